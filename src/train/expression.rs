//! Formulas written in TOML: weighting expressions (`"2*sigmoid(s_c - s_r) - 1"`,
//! see [`super::weighting`]) and preference losses (`"relu(1 - beta*h)"`,
//! see [`super::custom_loss`]).
//!
//! A small recursive-descent parser: parsed once against the names its user
//! offers, evaluated many times, never executed as code. Every number is a
//! float (`1/2` is 0.5, unlike integer-typed expression crates). Unknown
//! names are rejected at parse time with their offset, so a typo fails
//! before any training runs.
//!
//! One evaluator serves both users. A [`Value`] is either one number
//! ([`Value::Scalar`]: a constant, β, or a weighting's per-pair score) or one
//! number per pair ([`Value::Batch`], a [B] tensor): scalars are combined in
//! f64, anything touching a tensor becomes candle ops, so a loss is
//! differentiable end to end.
//!
//! Grammar (usual precedence, `^` right-associative and binding tighter than
//! unary minus, as in maths: `-x^2` = −(x²)):
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/') unary)*
//! unary   := '-' unary | power
//! power   := primary ('^' unary)?
//! primary := number | variable | function '(' expr (',' expr)* ')' | '(' expr ')'
//! ```
//! [`Expression::canonical`] prints the tree back with the fewest
//! parentheses and fixed spacing, so `relu(1-beta*(h))` and
//! `relu( 1 - beta*h )` print the same text.
use std::fmt;

use candle_core::Tensor;

use super::losses::{log_sigmoid, softplus};

/// σ(x), stable for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// softplus(x) = log(1 + eˣ), finite for every finite x.
fn softplus_f64(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Sigmoid,
    LogSigmoid,
    Softplus,
    Relu,
    Exp,
    Log,
    Abs,
    Tanh,
    Sqrt,
    Square,
    Pow,
    Min,
    Max,
    Clamp,
}

/// The functions an expression may call, with their arity.
const FUNCTIONS: [(&str, Function, usize); 14] = [
    ("sigmoid", Function::Sigmoid, 1),
    ("log_sigmoid", Function::LogSigmoid, 1),
    ("softplus", Function::Softplus, 1),
    ("relu", Function::Relu, 1),
    ("exp", Function::Exp, 1),
    ("log", Function::Log, 1),
    ("abs", Function::Abs, 1),
    ("tanh", Function::Tanh, 1),
    ("sqrt", Function::Sqrt, 1),
    ("square", Function::Square, 1),
    ("pow", Function::Pow, 2),
    ("min", Function::Min, 2),
    ("max", Function::Max, 2),
    ("clamp", Function::Clamp, 3),
];

/// Whether `name` is a function an expression may call (so a user's
/// constant cannot take that name).
pub fn is_function(name: &str) -> bool {
    FUNCTIONS.iter().any(|f| f.0 == name)
}

/// "a, b, c" for an error message.
fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

impl BinaryOp {
    fn apply(self, l: f64, r: f64) -> f64 {
        match self {
            BinaryOp::Add => l + r,
            BinaryOp::Sub => l - r,
            BinaryOp::Mul => l * r,
            BinaryOp::Div => l / r,
            BinaryOp::Pow => l.powf(r),
        }
    }
}

/// A node of the parsed tree and the byte offset of its first character in
/// the source (for error messages).
#[derive(Debug, Clone, PartialEq)]
struct Node {
    offset: usize,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Number(f64),
    /// An index into the expression's variable names.
    Variable(usize),
    Negate(Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    Call(Function, Vec<Node>),
}

/// A parsed expression over a fixed list of variable names; equality and
/// display use its source text.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    variables: Vec<String>,
    root: Node,
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A parse error: the expression, the byte offset and what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("expression `{source_text}`, at character {offset}: {message}")]
pub struct ParseError {
    pub source_text: String,
    pub offset: usize,
    pub message: String,
}

/// One number, or one number per pair ([B]).
#[derive(Debug, Clone)]
pub enum Value {
    Scalar(f64),
    Batch(Tensor),
}

impl Expression {
    /// Parses `source`; it may read the names in `variables`, which
    /// [`Self::eval`] later binds by position.
    pub fn parse(source: &str, variables: &[&str]) -> Result<Self, ParseError> {
        let tokens = tokenize(source)?;
        let mut parser = Parser {
            source,
            variables,
            tokens,
            next: 0,
        };
        let root = parser.expr()?;
        if let Some(tok) = parser.peek() {
            return Err(parser.error(
                tok.offset,
                format!("unexpected {} after a complete expression", tok.kind),
            ));
        }
        Ok(Self {
            source: source.to_string(),
            variables: variables.iter().map(|v| v.to_string()).collect(),
            root,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression reads the variable `name`.
    pub fn reads(&self, name: &str) -> bool {
        fn walk(node: &Node, index: usize) -> bool {
            match &node.kind {
                Kind::Number(_) => false,
                Kind::Variable(i) => *i == index,
                Kind::Negate(x) => walk(x, index),
                Kind::Binary(_, l, r) => walk(l, index) || walk(r, index),
                Kind::Call(_, args) => args.iter().any(|a| walk(a, index)),
            }
        }
        self.variables
            .iter()
            .position(|v| v == name)
            .is_some_and(|index| walk(&self.root, index))
    }

    /// The tree printed back: fewest parentheses, spaces around `+` and `-`
    /// only, `**` as `^`, numbers in shortest form. Parsing it gives the
    /// same tree, so it is a cache key that ignores spelling.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.print(&self.root, 0, &mut out);
        out
    }

    /// Every division's denominator, with its byte offset in the source, as
    /// an expression of its own (same variables).
    pub fn denominators(&self) -> Vec<(usize, Expression)> {
        fn walk(node: &Node, out: &mut Vec<Node>) {
            match &node.kind {
                Kind::Number(_) | Kind::Variable(_) => {}
                Kind::Negate(x) => walk(x, out),
                Kind::Binary(op, l, r) => {
                    if *op == BinaryOp::Div {
                        out.push((**r).clone());
                    }
                    walk(l, out);
                    walk(r, out);
                }
                Kind::Call(_, args) => args.iter().for_each(|a| walk(a, out)),
            }
        }
        let mut nodes = Vec::new();
        walk(&self.root, &mut nodes);
        nodes
            .into_iter()
            .map(|node| {
                let mut text = String::new();
                self.print(&node, 0, &mut text);
                let sub = Expression {
                    source: text,
                    variables: self.variables.clone(),
                    root: node,
                };
                (sub.root.offset, sub)
            })
            .collect()
    }

    /// The value given one [`Value`] per variable, in the order `parse` got
    /// the names. Scalars in, a scalar out; any batch in, candle ops.
    pub fn eval(&self, values: &[Value]) -> candle_core::Result<Value> {
        assert_eq!(
            values.len(),
            self.variables.len(),
            "one value per variable of `{}`",
            self.source
        );
        eval(&self.root, values)
    }

    /// The value given plain numbers (may be NaN or infinite: the caller decides).
    pub fn eval_scalar(&self, values: &[f64]) -> f64 {
        let values: Vec<Value> = values.iter().map(|v| Value::Scalar(*v)).collect();
        match self.eval(&values) {
            Ok(Value::Scalar(v)) => v,
            // Scalars never reach candle, so nothing can fail or be a tensor.
            other => unreachable!("scalar evaluation gave {other:?}"),
        }
    }

    /// Appends `node` to `out`, parenthesised when its precedence is below
    /// `min` (1: `+ -`, 2: `* /`, 3: unary `-`, 4: `^`, 5: atoms).
    fn print(&self, node: &Node, min: u8, out: &mut String) {
        let precedence = match &node.kind {
            Kind::Binary(BinaryOp::Add | BinaryOp::Sub, ..) => 1,
            Kind::Binary(BinaryOp::Mul | BinaryOp::Div, ..) => 2,
            Kind::Negate(_) => 3,
            Kind::Binary(BinaryOp::Pow, ..) => 4,
            _ => 5,
        };
        if precedence < min {
            out.push('(');
        }
        match &node.kind {
            Kind::Number(v) => out.push_str(&v.to_string()),
            Kind::Variable(i) => out.push_str(&self.variables[*i]),
            Kind::Negate(x) => {
                out.push('-');
                self.print(x, 3, out);
            }
            Kind::Binary(op, l, r) => {
                // Left-associative levels keep a same-level right operand in
                // parentheses (a - (b - c)); `^` is right-associative.
                let (left_min, right_min, symbol) = match op {
                    BinaryOp::Add => (1, 2, " + "),
                    BinaryOp::Sub => (1, 2, " - "),
                    BinaryOp::Mul => (2, 3, "*"),
                    BinaryOp::Div => (2, 3, "/"),
                    BinaryOp::Pow => (5, 3, "^"),
                };
                self.print(l, left_min, out);
                out.push_str(symbol);
                self.print(r, right_min, out);
            }
            Kind::Call(f, args) => {
                let name = FUNCTIONS.iter().find(|(_, g, _)| g == f).expect("known").0;
                out.push_str(name);
                out.push('(');
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.print(a, 0, out);
                }
                out.push(')');
            }
        }
        if precedence < min {
            out.push(')');
        }
    }
}

fn eval(node: &Node, values: &[Value]) -> candle_core::Result<Value> {
    match &node.kind {
        Kind::Number(v) => Ok(Value::Scalar(*v)),
        Kind::Variable(i) => Ok(values[*i].clone()),
        Kind::Negate(x) => match eval(x, values)? {
            Value::Scalar(v) => Ok(Value::Scalar(-v)),
            Value::Batch(t) => Ok(Value::Batch(t.neg()?)),
        },
        Kind::Binary(op, l, r) => binary(*op, eval(l, values)?, eval(r, values)?),
        Kind::Call(f, args) => {
            let mut a = args
                .iter()
                .map(|x| eval(x, values))
                .collect::<candle_core::Result<Vec<Value>>>()?
                .into_iter();
            let mut next = || a.next().expect("arity checked at parse time");
            match f {
                Function::Pow => binary(BinaryOp::Pow, next(), next()),
                Function::Min => minimum(next(), next()),
                Function::Max => maximum(next(), next()),
                // clamp(x, lo, hi) = min(max(x, lo), hi); written out because
                // f64::clamp panics when lo > hi.
                Function::Clamp => {
                    let (x, lo, hi) = (next(), next(), next());
                    minimum(maximum(x, lo)?, hi)
                }
                unary => unary_call(*unary, next()),
            }
        }
    }
}

/// A one-argument function, in f64 or as candle ops.
fn unary_call(f: Function, x: Value) -> candle_core::Result<Value> {
    Ok(match x {
        Value::Scalar(x) => Value::Scalar(match f {
            Function::Sigmoid => sigmoid(x),
            Function::LogSigmoid => -softplus_f64(-x),
            Function::Softplus => softplus_f64(x),
            Function::Relu => x.max(0.0),
            Function::Exp => x.exp(),
            Function::Log => x.ln(),
            Function::Abs => x.abs(),
            Function::Tanh => x.tanh(),
            Function::Sqrt => x.sqrt(),
            Function::Square => x * x,
            _ => unreachable!("{f:?} takes more than one argument"),
        }),
        Value::Batch(x) => Value::Batch(match f {
            Function::Sigmoid => candle_nn::ops::sigmoid(&x)?,
            Function::LogSigmoid => log_sigmoid(&x)?,
            Function::Softplus => softplus(&x)?,
            Function::Relu => x.relu()?,
            Function::Exp => x.exp()?,
            Function::Log => x.log()?,
            Function::Abs => x.abs()?,
            Function::Tanh => x.tanh()?,
            Function::Sqrt => x.sqrt()?,
            Function::Square => x.sqr()?,
            _ => unreachable!("{f:?} takes more than one argument"),
        }),
    })
}

/// `l op r`. A scalar next to a batch becomes an affine map of the batch
/// (the same ops the built-in losses use, so their values match bit for bit).
fn binary(op: BinaryOp, l: Value, r: Value) -> candle_core::Result<Value> {
    use BinaryOp::*;
    use Value::{Batch, Scalar};
    Ok(match (l, r) {
        (Scalar(a), Scalar(b)) => Scalar(op.apply(a, b)),
        (Batch(a), Scalar(b)) => Batch(match op {
            Add => a.affine(1.0, b)?,
            Sub => a.affine(1.0, -b)?,
            Mul => a.affine(b, 0.0)?,
            Div => a.affine(1.0 / b, 0.0)?,
            Pow if b == 2.0 => a.sqr()?,
            Pow => a.powf(b)?,
        }),
        (Scalar(a), Batch(b)) => Batch(match op {
            Add => b.affine(1.0, a)?,
            Sub => b.affine(-1.0, a)?,
            Mul => b.affine(a, 0.0)?,
            Div => b.recip()?.affine(a, 0.0)?,
            // aᵇ = e^{b ln a}.
            Pow => b.affine(a.ln(), 0.0)?.exp()?,
        }),
        (Batch(a), Batch(b)) => Batch(match op {
            Add => (a + b)?,
            Sub => (a - b)?,
            Mul => (a * b)?,
            Div => (a / b)?,
            // e^{b ln a}: NaN for a < 0, as in maths over the reals.
            Pow => a.pow(&b)?,
        }),
    })
}

fn minimum(l: Value, r: Value) -> candle_core::Result<Value> {
    Ok(match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(a.min(b)),
        (Value::Batch(a), Value::Scalar(s)) | (Value::Scalar(s), Value::Batch(a)) => {
            Value::Batch(a.minimum(s)?)
        }
        (Value::Batch(a), Value::Batch(b)) => Value::Batch(a.minimum(&b)?),
    })
}

fn maximum(l: Value, r: Value) -> candle_core::Result<Value> {
    Ok(match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(a.max(b)),
        (Value::Batch(a), Value::Scalar(s)) | (Value::Scalar(s), Value::Batch(a)) => {
            Value::Batch(a.maximum(s)?)
        }
        (Value::Batch(a), Value::Batch(b)) => Value::Batch(a.maximum(&b)?),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Number(f64),
    Name(String),
    Op(char),
    Open,
    Close,
    Comma,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Number(v) => write!(f, "number {v}"),
            TokenKind::Name(n) => write!(f, "name `{n}`"),
            TokenKind::Op(c) => write!(f, "`{c}`"),
            TokenKind::Open => f.write_str("`(`"),
            TokenKind::Close => f.write_str("`)`"),
            TokenKind::Comma => f.write_str("`,`"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    offset: usize,
}

fn tokenize(source: &str) -> Result<Vec<Token>, ParseError> {
    let error = |offset: usize, message: String| ParseError {
        source_text: source.to_string(),
        offset,
        message,
    };
    let chars: Vec<(usize, char)> = source.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (offset, ch) = chars[i];
        let kind = match ch {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].1.is_ascii_digit() || chars[i].1 == '.') {
                    i += 1;
                }
                // Exponent: 1e-3, 2.5E+4.
                if i < chars.len() && matches!(chars[i].1, 'e' | 'E') {
                    let mut j = i + 1;
                    if j < chars.len() && matches!(chars[j].1, '+' | '-') {
                        j += 1;
                    }
                    if j < chars.len() && chars[j].1.is_ascii_digit() {
                        i = j;
                        while i < chars.len() && chars[i].1.is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                let end = chars.get(i).map_or(source.len(), |c| c.0);
                let text = &source[offset..end];
                let value = text
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        error(chars[start].0, format!("`{text}` is not a finite number"))
                    })?;
                tokens.push(Token {
                    kind: TokenKind::Number(value),
                    offset,
                });
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].1.is_alphanumeric() || chars[i].1 == '_') {
                    i += 1;
                }
                let end = chars.get(i).map_or(source.len(), |c| c.0);
                tokens.push(Token {
                    kind: TokenKind::Name(source[offset..end].to_string()),
                    offset,
                });
                continue;
            }
            '*' if chars.get(i + 1).map(|c| c.1) == Some('*') => {
                i += 1; // `**` is `^`
                TokenKind::Op('^')
            }
            '+' | '-' | '*' | '/' | '^' => TokenKind::Op(ch),
            '(' => TokenKind::Open,
            ')' => TokenKind::Close,
            ',' => TokenKind::Comma,
            other => return Err(error(offset, format!("unexpected character `{other}`"))),
        };
        tokens.push(Token { kind, offset });
        i += 1;
    }
    Ok(tokens)
}

struct Parser<'a> {
    source: &'a str,
    variables: &'a [&'a str],
    tokens: Vec<Token>,
    next: usize,
}

impl Parser<'_> {
    fn error(&self, offset: usize, message: String) -> ParseError {
        ParseError {
            source_text: self.source.to_string(),
            offset,
            message,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn advance(&mut self) -> Result<Token, ParseError> {
        let tok =
            self.tokens.get(self.next).cloned().ok_or_else(|| {
                self.error(self.source.len(), "the expression ends too early".into())
            })?;
        self.next += 1;
        Ok(tok)
    }

    fn eat_op(&mut self, ops: &[char]) -> Option<char> {
        match self.peek() {
            Some(Token {
                kind: TokenKind::Op(c),
                ..
            }) if ops.contains(c) => {
                let c = *c;
                self.next += 1;
                Some(c)
            }
            _ => None,
        }
    }

    fn expect(&mut self, kind: TokenKind) -> Result<(), ParseError> {
        let tok = self.advance()?;
        if tok.kind == kind {
            Ok(())
        } else {
            Err(self.error(tok.offset, format!("expected {kind}, found {}", tok.kind)))
        }
    }

    fn binary(op: BinaryOp, left: Node, right: Node) -> Node {
        Node {
            offset: left.offset,
            kind: Kind::Binary(op, Box::new(left), Box::new(right)),
        }
    }

    fn expr(&mut self) -> Result<Node, ParseError> {
        let mut left = self.term()?;
        while let Some(op) = self.eat_op(&['+', '-']) {
            let op = if op == '+' {
                BinaryOp::Add
            } else {
                BinaryOp::Sub
            };
            left = Self::binary(op, left, self.term()?);
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Node, ParseError> {
        let mut left = self.unary()?;
        while let Some(op) = self.eat_op(&['*', '/']) {
            let op = if op == '*' {
                BinaryOp::Mul
            } else {
                BinaryOp::Div
            };
            left = Self::binary(op, left, self.unary()?);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        let offset = self.peek().map_or(self.source.len(), |t| t.offset);
        if self.eat_op(&['-']).is_some() {
            return Ok(Node {
                offset,
                kind: Kind::Negate(Box::new(self.unary()?)),
            });
        }
        if self.eat_op(&['+']).is_some() {
            let mut inner = self.power()?;
            inner.offset = offset;
            return Ok(inner);
        }
        self.power()
    }

    fn power(&mut self) -> Result<Node, ParseError> {
        let base = self.primary()?;
        if self.eat_op(&['^']).is_some() {
            return Ok(Self::binary(BinaryOp::Pow, base, self.unary()?));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        let tok = self.advance()?;
        let kind = match tok.kind {
            TokenKind::Number(v) => Kind::Number(v),
            TokenKind::Open => {
                let inner = self.expr()?;
                self.expect(TokenKind::Close)?;
                inner.kind
            }
            TokenKind::Name(name)
                if matches!(
                    self.peek(),
                    Some(Token {
                        kind: TokenKind::Open,
                        ..
                    })
                ) =>
            {
                self.call(&name, tok.offset)?
            }
            TokenKind::Name(name) => match self.variables.iter().position(|n| *n == name) {
                Some(index) => Kind::Variable(index),
                None => {
                    return Err(self.error(
                        tok.offset,
                        format!(
                            "unknown variable `{name}`; known variables: {}",
                            names(self.variables.iter().copied())
                        ),
                    ));
                }
            },
            other => {
                return Err(self.error(
                    tok.offset,
                    format!("expected a number, a name or `(`, found {other}"),
                ));
            }
        };
        Ok(Node {
            offset: tok.offset,
            kind,
        })
    }

    fn call(&mut self, name: &str, offset: usize) -> Result<Kind, ParseError> {
        let Some(&(_, function, arity)) = FUNCTIONS.iter().find(|(n, _, _)| *n == name) else {
            let known = names(FUNCTIONS.iter().map(|f| f.0));
            return Err(self.error(
                offset,
                format!("unknown function `{name}`; known functions: {known}"),
            ));
        };
        self.expect(TokenKind::Open)?;
        let mut args = vec![self.expr()?];
        while matches!(
            self.peek(),
            Some(Token {
                kind: TokenKind::Comma,
                ..
            })
        ) {
            self.next += 1;
            args.push(self.expr()?);
        }
        self.expect(TokenKind::Close)?;
        if args.len() != arity {
            return Err(self.error(
                offset,
                format!("`{name}` takes {arity} argument(s), got {}", args.len()),
            ));
        }
        Ok(Kind::Call(function, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    const XY: [&str; 2] = ["x", "y"];

    fn value(src: &str, x: f64, y: f64) -> f64 {
        Expression::parse(src, &XY)
            .unwrap_or_else(|e| panic!("{e}"))
            .eval_scalar(&[x, y])
    }

    #[test]
    fn arithmetic_precedence_and_float_division() {
        assert_eq!(value("1/2", 0.0, 0.0), 0.5);
        assert_eq!(value("1 + 2 * 3", 0.0, 0.0), 7.0);
        assert_eq!(value("(1 + 2) * 3", 0.0, 0.0), 9.0);
        assert_eq!(value("2^3^2", 0.0, 0.0), 512.0);
        assert_eq!(value("2**3", 0.0, 0.0), 8.0);
        assert_eq!(value("-2^2", 0.0, 0.0), -4.0);
        assert_eq!(value("8 - 2 - 1", 0.0, 0.0), 5.0);
        assert_eq!(value("1e-1 * 20", 0.0, 0.0), 2.0);
        assert_eq!(value("x - y + +x", 3.0, 1.0), 5.0);
    }

    #[test]
    fn functions_by_hand() {
        let s1 = 1.0 / (1.0 + (-1.0f64).exp());
        assert!((value("sigmoid(x - y)", 1.5, 0.5) - s1).abs() < 1e-15);
        assert!((value("log_sigmoid(x)", 1.0, 0.0) - s1.ln()).abs() < 1e-15);
        assert!((value("softplus(x)", -1.0, 0.0) - (1.0 + (-1f64).exp()).ln()).abs() < 1e-15);
        assert_eq!(value("log_sigmoid(x)", -800.0, 0.0), -800.0);
        assert_eq!(value("relu(x) + relu(y)", -2.0, 3.0), 3.0);
        assert_eq!(value("clamp(x, 0, 1)", 5.0, 0.0), 1.0);
        assert_eq!(value("clamp(x, 0, 1)", -5.0, 0.0), 0.0);
        assert_eq!(value("min(x, y) + max(x, y)", 2.0, -1.0), 1.0);
        assert_eq!(value("pow(x, 3) + square(y)", -2.0, 3.0), 1.0);
        assert!((value("log(exp(2)) + sqrt(abs(-9)) + tanh(0)", 0.0, 0.0) - 5.0).abs() < 1e-15);
    }

    /// Every function and operator, once as f64 and once as candle ops on
    /// [B] tensors (and mixed with scalars): the same numbers.
    #[test]
    fn tensor_evaluation_matches_scalar_evaluation() -> candle_core::Result<()> {
        let xs = [-3.0, -0.5, 0.25, 2.0];
        let ys = [0.5, 1.5, -2.0, 4.0];
        let sources = [
            "sigmoid(x) + log_sigmoid(y) - softplus(x*y)",
            "relu(x) * exp(y/4) + log(abs(x) + 1)",
            "tanh(x) + sqrt(y^2 + 1) + square(x - y)",
            "pow(abs(x), y) + 2^x + x^2 - (-x)^3",
            "min(x, y) + max(x, 0.5) + clamp(y, -1, x)",
            "1/(x*x + 1) - 2/(y + 10) + x/4",
        ];
        let t = |v: &[f64]| Value::Batch(Tensor::new(v, &Device::Cpu).unwrap());
        for src in sources {
            let e = Expression::parse(src, &XY).unwrap();
            let Value::Batch(got) = e.eval(&[t(&xs), t(&ys)])? else {
                panic!("{src}: a batch in, a batch out");
            };
            let got = got.to_vec1::<f64>()?;
            for i in 0..xs.len() {
                let want = e.eval_scalar(&[xs[i], ys[i]]);
                assert!(
                    (got[i] - want).abs() < 1e-12 * (1.0 + want.abs()),
                    "{src} at ({}, {}): tensor {} vs scalar {want}",
                    xs[i],
                    ys[i],
                    got[i]
                );
            }
        }
        Ok(())
    }

    #[test]
    fn tensor_evaluation_is_differentiable() -> candle_core::Result<()> {
        // d/dx [x²·y + relu(x)] = 2xy + 1[x ≥ 0]; d/dy = x².
        let x = Var::new(&[-1.5f64, 2.0], &Device::Cpu)?;
        let y = Var::new(&[3.0f64, 0.5], &Device::Cpu)?;
        let e = Expression::parse("x^2*y + relu(x)", &XY).unwrap();
        let Value::Batch(out) = e.eval(&[
            Value::Batch(x.as_tensor().clone()),
            Value::Batch(y.as_tensor().clone()),
        ])?
        else {
            panic!("a batch");
        };
        let grads = out.sum_all()?.backward()?;
        let gx = grads.get(x.as_tensor()).unwrap().to_vec1::<f64>()?;
        let gy = grads.get(y.as_tensor()).unwrap().to_vec1::<f64>()?;
        assert_eq!(gx, vec![2.0 * -1.5 * 3.0, 2.0 * 2.0 * 0.5 + 1.0]);
        assert_eq!(gy, vec![2.25, 4.0]);
        Ok(())
    }

    #[test]
    fn canonical_form_ignores_spacing_and_redundant_parentheses() {
        let canonical = |s: &str| Expression::parse(s, &XY).unwrap().canonical();
        assert_eq!(canonical("relu( 1-2*(x) )"), "relu(1 - 2*x)");
        assert_eq!(canonical("relu(1 - 2 * x)"), "relu(1 - 2*x)");
        assert_eq!(canonical("((x))**2"), "x^2");
        assert_eq!(canonical("1e-1*x"), "0.1*x");
        // Needed parentheses stay.
        for kept in [
            "x - (y - 1)",
            "x/(y*2)",
            "(x + y)*2",
            "(-x)^2",
            "-x^2",
            "(x^y)^2",
            "x^y^2",
            "x^-y",
            "--x",
            "1 - -x",
            "min(x, y + 1)",
        ] {
            assert_eq!(canonical(kept), kept);
        }
        assert_eq!(canonical("(x - y) - 1"), "x - y - 1");
        assert_eq!(canonical("x + (y + 1)"), "x + (y + 1)");
        // The canonical text parses to the same values.
        for src in ["x - (y - 1)*-x^2/(y + 3)", "2^-x^2", "-(x + y)^-2"] {
            let printed = canonical(src);
            assert_eq!(canonical(&printed), printed);
            let (a, b) = (value(src, 0.7, 1.3), value(&printed, 0.7, 1.3));
            assert!((a - b).abs() < 1e-15, "{src} → {printed}: {a} vs {b}");
        }
    }

    #[test]
    fn reads_and_denominators() {
        let e = Expression::parse("x/(y - y) + 1/2", &XY).unwrap();
        assert!(e.reads("x") && e.reads("y") && !e.reads("z"));
        assert!(!Expression::parse("x + 1", &XY).unwrap().reads("y"));
        let d: Vec<(usize, String)> = e
            .denominators()
            .into_iter()
            .map(|(at, d)| (at, d.canonical()))
            .collect();
        assert_eq!(d, vec![(2, "y - y".to_string()), (14, "2".to_string())]);
    }

    #[test]
    fn errors_name_the_expression_and_the_problem() {
        let err = Expression::parse("2*sigmoid(w - y)", &XY).unwrap_err();
        assert_eq!(err.offset, 10);
        let text = err.to_string();
        assert!(
            text.contains("`2*sigmoid(w - y)`") && text.contains("unknown variable `w`"),
            "{text}"
        );
        let err = Expression::parse("softmax(x)", &XY)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown function `softmax`") && err.contains("log_sigmoid"),
            "{err}"
        );
        let err = Expression::parse("min(x)", &XY).unwrap_err().to_string();
        assert!(err.contains("takes 2"), "{err}");
        assert!(
            Expression::parse("1 +", &XY)
                .unwrap_err()
                .to_string()
                .contains("ends too early")
        );
        assert!(Expression::parse("1e999 * x", &XY).is_err());
        assert!(Expression::parse("(x", &XY).is_err());
        assert!(Expression::parse("x x", &XY).is_err());
        assert!(Expression::parse("x; exit", &XY).is_err());
    }
}
