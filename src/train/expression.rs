//! Weighting expressions written in TOML, e.g. `"2*sigmoid(s_c - s_r) - 1"`.
//!
//! A small recursive-descent parser over f64 arithmetic: parsed once,
//! evaluated once per pair, never executed as code. Every number is a float
//! (`1/2` is 0.5, unlike integer-typed expression crates). Unknown names are
//! rejected at parse time, so a typo fails before any training runs.
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
use std::fmt;

/// The values of an expression's variables for one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bindings {
    pub s_c: f64,
    pub s_r: f64,
}

impl Bindings {
    pub fn delta(&self) -> f64 {
        self.s_c - self.s_r
    }

    /// 2σ(Δ) − 1, computed as tanh(Δ/2) (the same number, without the
    /// cancellation of 2σ − 1 near Δ = 0).
    pub fn confidence(&self) -> f64 {
        (self.delta() / 2.0).tanh()
    }
}

/// σ(x), stable for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variable {
    ScoreChosen,
    ScoreRejected,
    Delta,
    Confidence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Sigmoid,
    Exp,
    Log,
    Abs,
    Tanh,
    Sqrt,
    Min,
    Max,
    Clamp,
}

/// The names an expression may read. `delta` = s_c − s_r, `c` = 2σ(delta) − 1.
const VARIABLES: [(&str, Variable); 4] = [
    ("s_c", Variable::ScoreChosen),
    ("s_r", Variable::ScoreRejected),
    ("delta", Variable::Delta),
    ("c", Variable::Confidence),
];

/// The functions an expression may call, with their arity.
const FUNCTIONS: [(&str, Function, usize); 9] = [
    ("sigmoid", Function::Sigmoid, 1),
    ("exp", Function::Exp, 1),
    ("log", Function::Log, 1),
    ("abs", Function::Abs, 1),
    ("tanh", Function::Tanh, 1),
    ("sqrt", Function::Sqrt, 1),
    ("min", Function::Min, 2),
    ("max", Function::Max, 2),
    ("clamp", Function::Clamp, 3),
];

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

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Number(f64),
    Variable(Variable),
    Negate(Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    Call(Function, Vec<Node>),
}

/// A parsed expression; equality and display use its source text.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
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

/// A parse error: the expression, the character offset and what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("weighting expression `{source_text}`, at character {offset}: {message}")]
pub struct ParseError {
    pub source_text: String,
    pub offset: usize,
    pub message: String,
}

impl Expression {
    pub fn parse(source: &str) -> Result<Self, ParseError> {
        let tokens = tokenize(source)?;
        let mut parser = Parser {
            source,
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
            root,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The value for one pair (may be NaN or infinite: the caller decides).
    pub fn eval(&self, bindings: &Bindings) -> f64 {
        eval(&self.root, bindings)
    }
}

fn eval(node: &Node, b: &Bindings) -> f64 {
    match node {
        Node::Number(v) => *v,
        Node::Variable(Variable::ScoreChosen) => b.s_c,
        Node::Variable(Variable::ScoreRejected) => b.s_r,
        Node::Variable(Variable::Delta) => b.delta(),
        Node::Variable(Variable::Confidence) => b.confidence(),
        Node::Negate(x) => -eval(x, b),
        Node::Binary(op, l, r) => {
            let (l, r) = (eval(l, b), eval(r, b));
            match op {
                BinaryOp::Add => l + r,
                BinaryOp::Sub => l - r,
                BinaryOp::Mul => l * r,
                BinaryOp::Div => l / r,
                BinaryOp::Pow => l.powf(r),
            }
        }
        Node::Call(f, args) => {
            let a: Vec<f64> = args.iter().map(|x| eval(x, b)).collect();
            match f {
                Function::Sigmoid => sigmoid(a[0]),
                Function::Exp => a[0].exp(),
                Function::Log => a[0].ln(),
                Function::Abs => a[0].abs(),
                Function::Tanh => a[0].tanh(),
                Function::Sqrt => a[0].sqrt(),
                Function::Min => a[0].min(a[1]),
                Function::Max => a[0].max(a[1]),
                // clamp(x, lo, hi); written out because f64::clamp panics when lo > hi.
                Function::Clamp => a[0].max(a[1]).min(a[2]),
            }
        }
    }
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
                    .map_err(|_| error(chars[start].0, format!("`{text}` is not a number")))?;
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

    fn expr(&mut self) -> Result<Node, ParseError> {
        let mut left = self.term()?;
        while let Some(op) = self.eat_op(&['+', '-']) {
            let op = if op == '+' {
                BinaryOp::Add
            } else {
                BinaryOp::Sub
            };
            left = Node::Binary(op, Box::new(left), Box::new(self.term()?));
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
            left = Node::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        if self.eat_op(&['-']).is_some() {
            return Ok(Node::Negate(Box::new(self.unary()?)));
        }
        self.eat_op(&['+']);
        self.power()
    }

    fn power(&mut self) -> Result<Node, ParseError> {
        let base = self.primary()?;
        if self.eat_op(&['^']).is_some() {
            return Ok(Node::Binary(
                BinaryOp::Pow,
                Box::new(base),
                Box::new(self.unary()?),
            ));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        let tok = self.advance()?;
        match tok.kind {
            TokenKind::Number(v) => Ok(Node::Number(v)),
            TokenKind::Open => {
                let inner = self.expr()?;
                self.expect(TokenKind::Close)?;
                Ok(inner)
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
                self.call(&name, tok.offset)
            }
            TokenKind::Name(name) => match VARIABLES.iter().find(|(n, _)| *n == name) {
                Some((_, variable)) => Ok(Node::Variable(*variable)),
                None => Err(self.error(
                    tok.offset,
                    format!(
                        "unknown variable `{name}`; known variables: {}",
                        names(VARIABLES.iter().map(|v| v.0))
                    ),
                )),
            },
            other => Err(self.error(
                tok.offset,
                format!("expected a number, a name or `(`, found {other}"),
            )),
        }
    }

    fn call(&mut self, name: &str, offset: usize) -> Result<Node, ParseError> {
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
        Ok(Node::Call(function, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(src: &str, s_c: f64, s_r: f64) -> f64 {
        Expression::parse(src)
            .unwrap_or_else(|e| panic!("{e}"))
            .eval(&Bindings { s_c, s_r })
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
        assert_eq!(value("s_c - s_r + delta", 3.0, 1.0), 4.0);
    }

    #[test]
    fn functions_by_hand() {
        assert!((value("sigmoid(delta)", 1.5, 0.5) - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-15);
        assert!((value("c", 1.5, 0.5) - (2.0 / (1.0 + (-1.0f64).exp()) - 1.0)).abs() < 1e-15);
        assert_eq!(value("clamp(delta, 0, 1)", 5.0, 0.0), 1.0);
        assert_eq!(value("clamp(delta, 0, 1)", -5.0, 0.0), 0.0);
        assert_eq!(value("min(s_c, s_r) + max(s_c, s_r)", 2.0, -1.0), 1.0);
        assert!((value("log(exp(2)) + sqrt(abs(-9)) + tanh(0)", 0.0, 0.0) - 5.0).abs() < 1e-15);
    }

    #[test]
    fn errors_name_the_expression_and_the_problem() {
        let err = Expression::parse("2*sigmoid(s_w - s_r)").unwrap_err();
        assert_eq!(err.offset, 10);
        let text = err.to_string();
        assert!(
            text.contains("`2*sigmoid(s_w - s_r)`") && text.contains("unknown variable `s_w`"),
            "{text}"
        );
        let err = Expression::parse("softmax(delta)").unwrap_err().to_string();
        assert!(
            err.contains("unknown function `softmax`") && err.contains("sigmoid"),
            "{err}"
        );
        let err = Expression::parse("min(delta)").unwrap_err().to_string();
        assert!(err.contains("takes 2"), "{err}");
        assert!(
            Expression::parse("1 +")
                .unwrap_err()
                .to_string()
                .contains("ends too early")
        );
        assert!(Expression::parse("(delta").is_err());
        assert!(Expression::parse("delta delta").is_err());
        assert!(Expression::parse("delta; exit").is_err());
    }
}
