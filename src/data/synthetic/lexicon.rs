//! The synthetic world's vocabulary: every word a prompt, a response or the
//! base policy's noise can contain, grouped by the role it plays. Task
//! generators, the gold reward and the annotators all read these lists, so a
//! word's meaning is defined in exactly one place.

/// Special tokens, in id order: `<pad>` = 0, `<eos>` = 1, `<unk>` = 2.
pub const SPECIALS: [&str; 3] = ["<pad>", "<eos>", "<unk>"];

/// Punctuation, written as separate words (`what is 2 plus 3 ?`).
pub const PUNCTUATION: &[&str] = &["?", ":", ",", "."];

/// Number words `0`..=`MAX_NUMBER`; arithmetic results and sort items stay in range.
pub const NUMBERS: &[&str] = &[
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20",
];
pub const MAX_NUMBER: u32 = 20;

/// Glue words of the prompt and response templates.
pub const FRAME: &[&str] = &[
    "what", "is", "the", "answer", "how", "do", "should", "i", "a", "my", "you", "with", "and",
    "then", "first", "it", "at", "felt", "help", "that", "this", "not", "to", "tldr",
];

// ---- helpful -------------------------------------------------------------

/// Arithmetic operators, as prompt words.
pub const ARITH_OPS: &[&str] = &["plus", "minus", "times"];
/// Commands of the sequence tasks: `copy : ...`, `sort : ...`, `reverse : ...`, `list 3 fruits`.
pub const SEQUENCE_COMMANDS: &[&str] = &["copy", "sort", "reverse", "list"];

/// A category name and its members, for `list k <category>` and as the
/// items that `copy` / `reverse` shuffle around.
pub struct Category {
    pub name: &'static str,
    pub members: &'static [&'static str],
}
pub const CATEGORIES: &[Category] = &[
    Category {
        name: "fruits",
        members: &[
            "apple", "pear", "plum", "grape", "lemon", "mango", "peach", "cherry",
        ],
    },
    Category {
        name: "colors",
        members: &[
            "red", "blue", "green", "yellow", "black", "white", "pink", "brown",
        ],
    },
    Category {
        name: "animals",
        members: &[
            "cat", "dog", "fox", "owl", "horse", "mouse", "sheep", "wolf",
        ],
    },
    Category {
        name: "tools",
        members: &[
            "hammer", "saw", "drill", "wrench", "ruler", "shovel", "rope", "ladder",
        ],
    },
];

// ---- harmless ------------------------------------------------------------

/// Verbs that make `how do i <verb> a <color> <object> ?` a harmful request.
/// They are also flagged tokens: a response that repeats them complies.
pub const HARMFUL_VERBS: &[&str] = &["steal", "poison", "hack", "attack", "burn", "smash"];

/// A benign verb and the two follow-up steps a helpful answer names.
pub struct BenignVerb {
    pub verb: &'static str,
    pub steps: [&'static str; 2],
}
pub const BENIGN_VERBS: &[BenignVerb] = &[
    BenignVerb {
        verb: "cook",
        steps: ["heat", "stir"],
    },
    BenignVerb {
        verb: "clean",
        steps: ["rinse", "dry"],
    },
    BenignVerb {
        verb: "fix",
        steps: ["check", "tighten"],
    },
    BenignVerb {
        verb: "paint",
        steps: ["brush", "seal"],
    },
    BenignVerb {
        verb: "wash",
        steps: ["soap", "wipe"],
    },
    BenignVerb {
        verb: "sell",
        steps: ["photograph", "advertise"],
    },
];
/// Objects of harmless-family requests.
pub const OBJECTS: &[&str] = &[
    "car", "phone", "house", "bike", "door", "laptop", "boat", "kettle",
];

/// Harmful tokens beyond the harmful verbs: the base policy sprinkles them in,
/// the gold reward penalises each occurrence.
pub const FLAGGED_EXTRA: &[&str] = &["knife", "gun", "blood", "kill", "weapon"];

/// Refusal templates; each contains a refusal marker.
pub const REFUSALS: &[&str] = &[
    "sorry , i cannot help with that",
    "i cannot help with that",
    "sorry , that is not safe",
    "i will not do that , sorry",
];
/// Words whose presence marks a response as a refusal.
pub const REFUSAL_MARKERS: &[&str] = &["sorry", "cannot", "will", "safe"];

/// Politeness words: neutral to the gold reward (except in refusals),
/// attractive to some annotators.
pub const POLITE: &[&str] = &["sure", "please", "thanks", "glad", "kindly"];

/// Filler words the base policy inserts; the gold reward penalises them.
pub const FILLER: &[&str] = &["um", "well", "so", "like", "basically", "actually"];

/// Hedges: liked by the philosophy domain's gold taste, disliked by baking's.
pub const HEDGES: &[&str] = &["perhaps", "maybe", "arguably"];

// ---- tldr ----------------------------------------------------------------

pub const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
pub const PLACES: &[&str] = &["park", "station", "office", "market", "school", "beach"];
pub const TLDR_VERBS: &[&str] = &["met", "called", "helped", "visited", "saw"];
pub const MOODS: &[&str] = &["happy", "sad", "tired", "calm"];

// ---- shp ----------------------------------------------------------------

/// One SHP-like forum: its prompt tag, what people ask about, and the advice
/// words a relevant answer uses.
pub struct Domain {
    pub family: &'static str,
    pub tag: &'static str,
    pub verbs: &'static [&'static str],
    pub topics: &'static [&'static str],
    pub advice: &'static [&'static str],
}
pub const DOMAINS: &[Domain] = &[
    Domain {
        family: "shp-askacademia",
        tag: "academia",
        verbs: &["write", "revise", "submit", "plan", "present", "defend"],
        topics: &[
            "thesis", "paper", "grant", "lecture", "exam", "proposal", "poster", "syllabus",
        ],
        advice: &[
            "draft",
            "cite",
            "deadline",
            "feedback",
            "outline",
            "advisor",
            "reviewers",
            "notes",
        ],
    },
    Domain {
        family: "shp-askbaking",
        tag: "baking",
        verbs: &["bake", "knead", "cool", "store", "mix", "glaze"],
        topics: &[
            "bread", "cake", "dough", "cookies", "pie", "crust", "muffins", "bagels",
        ],
        advice: &[
            "oven", "flour", "butter", "sugar", "yeast", "rest", "salt", "timer",
        ],
    },
    Domain {
        family: "shp-askengineers",
        tag: "engineering",
        verbs: &["design", "test", "debug", "build", "measure", "calibrate"],
        topics: &[
            "bridge", "circuit", "motor", "pump", "beam", "sensor", "valve", "gearbox",
        ],
        advice: &[
            "load",
            "voltage",
            "torque",
            "tolerance",
            "spec",
            "prototype",
            "margin",
            "datasheet",
        ],
    },
    Domain {
        family: "shp-askphilosophy",
        tag: "philosophy",
        verbs: &["study", "argue", "define", "question", "teach", "debate"],
        topics: &[
            "ethics",
            "logic",
            "mind",
            "truth",
            "beauty",
            "justice",
            "freedom",
            "knowledge",
        ],
        advice: &[
            "kant", "hume", "reason", "premise", "virtue", "plato", "doubt", "evidence",
        ],
    },
];
/// When an SHP question is asked; widens the prompt space so test prompts can be held out.
pub const MODIFIERS: &[&str] = &[
    "today", "tonight", "soon", "again", "quickly", "alone", "safely", "properly",
];

/// Whether `word` is a flagged (harmful) token.
pub fn is_flagged(word: &str) -> bool {
    HARMFUL_VERBS.contains(&word) || FLAGGED_EXTRA.contains(&word)
}

/// Whether the response words contain a refusal marker.
pub fn is_refusal(words: &[&str]) -> bool {
    words.iter().any(|w| REFUSAL_MARKERS.contains(w))
}

/// Words that frame a response without carrying its content: politeness,
/// filler, hedges and punctuation. Sequence answers are compared without them.
pub fn is_framing(word: &str) -> bool {
    POLITE.contains(&word)
        || FILLER.contains(&word)
        || HEDGES.contains(&word)
        || PUNCTUATION.contains(&word)
}

/// Every word of the world, specials first, each once, in a fixed order
/// (the tokenizer's id order).
pub fn all_words() -> Vec<&'static str> {
    let mut groups: Vec<&'static [&'static str]> = vec![
        &SPECIALS,
        PUNCTUATION,
        NUMBERS,
        FRAME,
        ARITH_OPS,
        SEQUENCE_COMMANDS,
    ];
    let category_names: Vec<&'static str> = CATEGORIES.iter().map(|c| c.name).collect();
    let category_members: Vec<&'static str> = CATEGORIES
        .iter()
        .flat_map(|c| c.members.iter().copied())
        .collect();
    let benign: Vec<&'static str> = BENIGN_VERBS
        .iter()
        .flat_map(|b| std::iter::once(b.verb).chain(b.steps))
        .collect();
    let domains: Vec<&'static str> = DOMAINS
        .iter()
        .flat_map(|d| {
            std::iter::once(d.tag)
                .chain(d.verbs.iter().copied())
                .chain(d.topics.iter().copied())
                .chain(d.advice.iter().copied())
        })
        .collect();
    let refusal_words: Vec<&'static str> =
        REFUSALS.iter().flat_map(|r| r.split_whitespace()).collect();
    groups.extend([
        HARMFUL_VERBS,
        OBJECTS,
        FLAGGED_EXTRA,
        REFUSAL_MARKERS,
        POLITE,
        FILLER,
        HEDGES,
        NAMES,
        PLACES,
        TLDR_VERBS,
        MOODS,
        MODIFIERS,
    ]);
    let mut words: Vec<&'static str> = Vec::new();
    let owned = [
        category_names,
        category_members,
        benign,
        domains,
        refusal_words,
    ];
    for word in groups
        .iter()
        .flat_map(|g| g.iter().copied())
        .chain(owned.iter().flat_map(|g| g.iter().copied()))
    {
        if !words.contains(&word) {
            words.push(word);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_small_and_starts_with_specials() {
        let words = all_words();
        assert_eq!(&words[..3], &SPECIALS);
        assert!(words.len() <= 300, "vocabulary has {} words", words.len());
        assert!(words.iter().all(|w| !w.contains(char::is_whitespace)));
    }
}
