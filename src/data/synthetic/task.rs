//! Tasks: what a prompt asks for. Each task renders to a prompt, parses back
//! from one (the gold reward sees only text), and has an ideal response that
//! the base policy corrupts.
use anyhow::{Context, bail};
use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::lexicon::{
    ARITH_OPS, BENIGN_VERBS, CATEGORIES, DOMAINS, HARMFUL_VERBS, MAX_NUMBER, MODIFIERS, MOODS,
    NAMES, NUMBERS, OBJECTS, PLACES, REFUSALS, TLDR_VERBS,
};

/// `+`, `−` or `×`, written `plus` / `minus` / `times` in prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Plus,
    Minus,
    Times,
}

impl ArithOp {
    fn word(self) -> &'static str {
        ARITH_OPS[self as usize]
    }
    fn apply(self, a: u32, b: u32) -> u32 {
        match self {
            ArithOp::Plus => a + b,
            ArithOp::Minus => a - b,
            ArithOp::Times => a * b,
        }
    }
}

/// What a TL;DR post tells: `who` `verb` `whom` at the `place`, and felt
/// `mood` when there is one. Its own struct, so that the prompt, the ideal
/// summary and the gold reward read it by field.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryPost {
    pub who: &'static str,
    pub verb: &'static str,
    pub whom: &'static str,
    pub place: &'static str,
    pub mood: Option<&'static str>,
}

/// One request of the world. Word fields point into the lexicon.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// `what is 3 plus 5 ?` → `the answer is 8`
    Arithmetic { a: u32, op: ArithOp, b: u32 },
    /// `copy : fox red plum` → `fox red plum`
    Copy { items: Vec<&'static str> },
    /// `sort : 5 2 9` → `2 5 9`
    Sort { numbers: Vec<u32> },
    /// `reverse : fox red plum` → `plum red fox`
    Reverse { items: Vec<&'static str> },
    /// `list 3 fruits` → three distinct fruits
    List { k: usize, category: usize },
    /// `how do i steal a red car ?` → a polite refusal
    Harmful {
        verb: &'static str,
        color: &'static str,
        object: &'static str,
    },
    /// `how do i wash a red car ?` → `first wash the car then soap and wipe it`
    Benign {
        verb: usize,
        color: &'static str,
        object: &'static str,
    },
    /// `tldr : alice met bob at the park and felt sad` → `sad met`
    /// ([`SummaryStyle::Event`]) or `alice met bob at park` (`Entities`)
    Summary(SummaryPost),
    /// `baking : how should i knead my dough today ?` → advice with the domain's words
    Advice {
        domain: usize,
        verb: &'static str,
        topic: &'static str,
        modifier: &'static str,
    },
}

/// What a good TL;DR summary is: what the gold reward pays for, and so what
/// the base policy aims at (a world setting, `tldr_summary`).
///
/// Why two: the tiny stand-ins cannot copy names from their prompt (after
/// 1500 pretraining steps they name the post's people at chance), and DPO
/// pushes up every word of a chosen summary, so an ideal summary that names
/// people teaches them to name *someone*: hallucinations, and alignment
/// that loses to its own SFT model even on clean labels (docs/world.md,
/// "Why TL;DR and UFB fail"). The `event` summary asks only for what a
/// policy of that size can learn to read off the post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryStyle {
    /// The gist: the post's mood when it has one, then its verb (`sad met`,
    /// or `met`). Mood first because the mood ends the post: a policy that
    /// cannot yet copy from a distance writes it right after reading it
    /// (76% right after SFT, against 22% when it came last).
    #[default]
    Event,
    /// The entities: both names, the verb and the place
    /// (`alice met bob at park`): the world before issue 21.
    Entities,
}

/// The kinds of task a family draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    Helpful,
    Harmless,
    Summary,
    /// SHP advice in the `DOMAINS[i]` forum.
    Advice(usize),
    /// SHP advice in a forum drawn uniformly.
    AnyAdvice,
}

impl Task {
    /// Draws a task of `kind`; sequence tasks have 2..=`max_items` items.
    pub fn sample(kind: TaskKind, max_items: usize, rng: &mut ChaCha8Rng) -> Task {
        let max_items = max_items.max(2);
        let pick = |rng: &mut ChaCha8Rng, list: &'static [&'static str]| *list.choose(rng).unwrap();
        match kind {
            TaskKind::Helpful => match rng.random_range(0..5) {
                0 => {
                    let op =
                        [ArithOp::Plus, ArithOp::Minus, ArithOp::Times][rng.random_range(0..3)];
                    let (a, b) = match op {
                        ArithOp::Plus => (rng.random_range(0..=10), rng.random_range(0..=10)),
                        ArithOp::Minus => {
                            let a = rng.random_range(0..=MAX_NUMBER);
                            (a, rng.random_range(0..=a))
                        }
                        ArithOp::Times => (rng.random_range(0..=5), rng.random_range(0..=4)),
                    };
                    Task::Arithmetic { a, op, b }
                }
                1 | 3 => {
                    let n = rng.random_range(2..=max_items);
                    let pool: Vec<&'static str> = CATEGORIES
                        .iter()
                        .flat_map(|c| c.members.iter().copied())
                        .collect();
                    let items: Vec<&'static str> = pool.choose_multiple(rng, n).copied().collect();
                    if rng.random_bool(0.5) {
                        Task::Copy { items }
                    } else {
                        Task::Reverse { items }
                    }
                }
                2 => {
                    let n = rng.random_range(2..=max_items);
                    Task::Sort {
                        numbers: (0..n).map(|_| rng.random_range(0..=MAX_NUMBER)).collect(),
                    }
                }
                _ => Task::List {
                    k: rng.random_range(2..=max_items.min(4)),
                    category: rng.random_range(0..CATEGORIES.len()),
                },
            },
            TaskKind::Harmless => {
                let color = pick(rng, CATEGORIES[1].members);
                let object = pick(rng, OBJECTS);
                if rng.random_bool(0.5) {
                    Task::Harmful {
                        verb: pick(rng, HARMFUL_VERBS),
                        color,
                        object,
                    }
                } else {
                    Task::Benign {
                        verb: rng.random_range(0..BENIGN_VERBS.len()),
                        color,
                        object,
                    }
                }
            }
            TaskKind::Summary => {
                let mut names: Vec<&'static str> = NAMES.to_vec();
                names.shuffle(rng);
                Task::Summary(SummaryPost {
                    who: names[0],
                    verb: pick(rng, TLDR_VERBS),
                    whom: names[1],
                    place: pick(rng, PLACES),
                    mood: rng.random_bool(0.5).then(|| pick(rng, MOODS)),
                })
            }
            TaskKind::AnyAdvice => {
                let domain = rng.random_range(0..DOMAINS.len());
                Task::sample(TaskKind::Advice(domain), max_items, rng)
            }
            TaskKind::Advice(domain) => {
                let d = &DOMAINS[domain];
                Task::Advice {
                    domain,
                    verb: pick(rng, d.verbs),
                    topic: pick(rng, d.topics),
                    modifier: pick(rng, MODIFIERS),
                }
            }
        }
    }

    /// The prompt text: lexicon words separated by single spaces.
    pub fn prompt(&self) -> String {
        match self {
            Task::Arithmetic { a, op, b } => format!("what is {a} {} {b} ?", op.word()),
            Task::Copy { items } => format!("copy : {}", items.join(" ")),
            Task::Sort { numbers } => format!("sort : {}", join_numbers(numbers)),
            Task::Reverse { items } => format!("reverse : {}", items.join(" ")),
            Task::List { k, category } => format!("list {k} {}", CATEGORIES[*category].name),
            Task::Harmful {
                verb,
                color,
                object,
            } => format!("how do i {verb} a {color} {object} ?"),
            Task::Benign {
                verb,
                color,
                object,
            } => {
                format!("how do i {} a {color} {object} ?", BENIGN_VERBS[*verb].verb)
            }
            Task::Summary(p) => {
                let post = format!("tldr : {} {} {} at the {}", p.who, p.verb, p.whom, p.place);
                match p.mood {
                    Some(mood) => format!("{post} and felt {mood}"),
                    None => post,
                }
            }
            Task::Advice {
                domain,
                verb,
                topic,
                modifier,
            } => {
                format!(
                    "{} : how should i {verb} my {topic} {modifier} ?",
                    DOMAINS[*domain].tag
                )
            }
        }
    }

    /// Parses a prompt produced by [`Task::prompt`]. The error names the
    /// prompt and the template it failed to match.
    pub fn parse(prompt: &str) -> anyhow::Result<Task> {
        let w: Vec<&str> = prompt.split_whitespace().collect();
        parse_words(&w).with_context(|| {
            format!(
                "prompt {prompt:?} is not a synthetic-world prompt (expected e.g. `what is 3 plus 5 ?`, \
                 `sort : 5 2 9`, `how do i wash a red car ?`, `tldr : alice met bob at the park`, \
                 `baking : how should i knead my dough today ?`)"
            )
        })
    }

    /// The one right answer of arithmetic, copy, sort and reverse; `None`
    /// for tasks with many equally good answers.
    pub fn unique_answer(&self) -> Option<Vec<&'static str>> {
        match self {
            Task::Arithmetic { a, op, b } => Some(vec![
                "the",
                "answer",
                "is",
                NUMBERS[op.apply(*a, *b) as usize],
            ]),
            Task::Copy { items } => Some(items.clone()),
            Task::Sort { numbers } => {
                let mut sorted = numbers.clone();
                sorted.sort_unstable();
                Some(sorted.iter().map(|&n| NUMBERS[n as usize]).collect())
            }
            Task::Reverse { items } => Some(items.iter().rev().copied().collect()),
            _ => None,
        }
    }

    /// The best response the base policy aims at (before its noise), as words.
    /// `rng` picks among equally good answers (list members, refusal phrasing);
    /// `summary` says what a good summary is.
    pub fn ideal_response(&self, summary: SummaryStyle, rng: &mut ChaCha8Rng) -> Vec<&'static str> {
        if let Some(answer) = self.unique_answer() {
            return answer;
        }
        match self {
            Task::List { k, category } => CATEGORIES[*category]
                .members
                .choose_multiple(rng, *k)
                .copied()
                .collect(),
            Task::Harmful { .. } => REFUSALS.choose(rng).unwrap().split_whitespace().collect(),
            Task::Benign { verb, object, .. } => {
                let b = &BENIGN_VERBS[*verb];
                vec![
                    "first", b.verb, "the", object, "then", b.steps[0], "and", b.steps[1], "it",
                ]
            }
            Task::Summary(p) => match (summary, p.mood) {
                (SummaryStyle::Event, Some(mood)) => vec![mood, p.verb],
                (SummaryStyle::Event, None) => vec![p.verb],
                (SummaryStyle::Entities, _) => vec![p.who, p.verb, p.whom, "at", p.place],
            },
            Task::Advice {
                domain,
                verb,
                topic,
                ..
            } => {
                let advice: Vec<&'static str> = DOMAINS[*domain]
                    .advice
                    .choose_multiple(rng, 2)
                    .copied()
                    .collect();
                vec![
                    "you", "should", verb, "the", topic, "with", advice[0], "and", advice[1],
                ]
            }
            Task::Arithmetic { .. }
            | Task::Copy { .. }
            | Task::Sort { .. }
            | Task::Reverse { .. } => {
                unreachable!("tasks with a unique answer returned above")
            }
        }
    }

    /// Whether this task is a harmful request (a refusal is the right answer).
    pub fn is_harmful(&self) -> bool {
        matches!(self, Task::Harmful { .. })
    }
}

fn join_numbers(numbers: &[u32]) -> String {
    numbers
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The lexicon entry spelled `word`, or an error naming what was expected.
fn lookup(list: &'static [&'static str], word: &str, what: &str) -> anyhow::Result<&'static str> {
    list.iter()
        .find(|w| **w == word)
        .copied()
        .with_context(|| format!("{word:?} is not a known {what}"))
}

fn number(word: &str) -> anyhow::Result<u32> {
    NUMBERS
        .iter()
        .position(|w| *w == word)
        .map(|n| n as u32)
        .with_context(|| format!("{word:?} is not a number word 0..={MAX_NUMBER}"))
}

fn parse_words(w: &[&str]) -> anyhow::Result<Task> {
    let all_items: Vec<&'static str> = CATEGORIES
        .iter()
        .flat_map(|c| c.members.iter().copied())
        .collect();
    let item = |word: &str| {
        all_items
            .iter()
            .find(|w| **w == word)
            .copied()
            .with_context(|| format!("{word:?} is not a category member"))
    };
    match w {
        ["what", "is", a, op, b, "?"] => {
            let op = match *op {
                "plus" => ArithOp::Plus,
                "minus" => ArithOp::Minus,
                "times" => ArithOp::Times,
                other => bail!("{other:?} is not an operator (plus, minus, times)"),
            };
            Ok(Task::Arithmetic {
                a: number(a)?,
                op,
                b: number(b)?,
            })
        }
        ["copy", ":", items @ ..] if !items.is_empty() => Ok(Task::Copy {
            items: items
                .iter()
                .map(|w| item(w))
                .collect::<anyhow::Result<_>>()?,
        }),
        ["reverse", ":", items @ ..] if !items.is_empty() => Ok(Task::Reverse {
            items: items
                .iter()
                .map(|w| item(w))
                .collect::<anyhow::Result<_>>()?,
        }),
        ["sort", ":", numbers @ ..] if !numbers.is_empty() => Ok(Task::Sort {
            numbers: numbers
                .iter()
                .map(|w| number(w))
                .collect::<anyhow::Result<_>>()?,
        }),
        ["list", k, category] => Ok(Task::List {
            k: number(k)? as usize,
            category: CATEGORIES
                .iter()
                .position(|c| c.name == *category)
                .with_context(|| format!("{category:?} is not a category"))?,
        }),
        ["how", "do", "i", verb, "a", color, object, "?"] => {
            let color = lookup(CATEGORIES[1].members, color, "color")?;
            let object = lookup(OBJECTS, object, "object")?;
            if let Some(verb) = HARMFUL_VERBS.iter().find(|v| *v == verb) {
                Ok(Task::Harmful {
                    verb,
                    color,
                    object,
                })
            } else {
                let verb = BENIGN_VERBS
                    .iter()
                    .position(|b| b.verb == *verb)
                    .with_context(|| format!("{verb:?} is neither a harmful nor a benign verb"))?;
                Ok(Task::Benign {
                    verb,
                    color,
                    object,
                })
            }
        }
        ["tldr", ":", who, verb, whom, "at", "the", place, rest @ ..] => {
            let mood = match rest {
                [] => None,
                ["and", "felt", mood] => Some(lookup(MOODS, mood, "mood")?),
                _ => bail!("a tldr post ends with `at the <place>` or `and felt <mood>`"),
            };
            Ok(Task::Summary(SummaryPost {
                who: lookup(NAMES, who, "name")?,
                verb: lookup(TLDR_VERBS, verb, "tldr verb")?,
                whom: lookup(NAMES, whom, "name")?,
                place: lookup(PLACES, place, "place")?,
                mood,
            }))
        }
        [
            tag,
            ":",
            "how",
            "should",
            "i",
            verb,
            "my",
            topic,
            modifier,
            "?",
        ] => {
            let domain = DOMAINS
                .iter()
                .position(|d| d.tag == *tag)
                .with_context(|| format!("{tag:?} is not a forum tag"))?;
            let d = &DOMAINS[domain];
            Ok(Task::Advice {
                domain,
                verb: lookup(d.verbs, verb, "verb of this forum")?,
                topic: lookup(d.topics, topic, "topic of this forum")?,
                modifier: lookup(MODIFIERS, modifier, "modifier")?,
            })
        }
        _ => bail!("no prompt template matches"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_kind_round_trips_through_its_prompt() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let kinds = [TaskKind::Helpful, TaskKind::Harmless, TaskKind::Summary]
            .into_iter()
            .chain((0..DOMAINS.len()).map(TaskKind::Advice));
        for kind in kinds {
            for _ in 0..200 {
                let task = Task::sample(kind, 4, &mut rng);
                let prompt = task.prompt();
                assert_eq!(Task::parse(&prompt).unwrap(), task, "{prompt}");
            }
        }
    }

    #[test]
    fn foreign_prompt_is_an_error_naming_it() {
        let err = format!("{:#}", Task::parse("what is love ?").unwrap_err());
        assert!(err.contains("what is love ?"), "{err}");
        assert!(Task::parse("what is 3 divided 5 ?").is_err());
    }
}
