//! Enums a manifest names by string (`objective = "dpo"`, `train_on =
//! "all"`): each lists its variants and their names once, in
//! [`manifest_names!`], which derives the lookups both ways and `Display`
//! from that one list, so a name cannot be added to one and missed by
//! another. The names must match the enum's serde names (`rename_all =
//! "lowercase"`): the stage params hold the serde form, messages the name.

/// `manifest_names!(Type { Variant => "name", … })` gives `Type` the
/// constants `ALL` (every variant, in order) and `NAMES` (their names),
/// `name()`, `parse()` (`None` for a name that is not a choice) and
/// `Display` (the name). The variants are listed in declaration order, so
/// `NAMES[v as usize]` is `v`'s name.
macro_rules! manifest_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every choice, in declaration order.
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];
            /// Their names, as a manifest writes them.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            pub fn name(self) -> &'static str {
                Self::NAMES[self as usize]
            }

            /// `None` for a name that is not a choice.
            pub fn parse(name: &str) -> Option<$ty> {
                Self::ALL.into_iter().find(|v| v.name() == name)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
pub(crate) use manifest_names;

#[cfg(test)]
mod tests {
    use super::super::{Objective, TrainOn};

    /// Each name parses back to its variant and is the variant's serde form;
    /// other names parse to `None`.
    fn round_trips<T>(all: &[T], name: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + serde::Serialize,
    {
        for &v in all {
            assert_eq!(parse(name(v)), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), name(v));
            assert_eq!(v.to_string(), name(v));
        }
        assert_eq!(parse("nope"), None);
    }

    #[test]
    fn names_round_trip_and_match_serde() {
        round_trips(&Objective::ALL, Objective::name, Objective::parse);
        round_trips(&TrainOn::ALL, TrainOn::name, TrainOn::parse);
        assert_eq!(Objective::parse("ppo"), None);
        assert_eq!(TrainOn::parse("both"), None);
        assert_eq!(TrainOn::default(), TrainOn::Unlabeled);
        assert_eq!(Objective::NAMES, ["dpo", "ipo", "rdpo", "custom"]);
        assert_eq!(TrainOn::NAMES, ["unlabeled", "labeled", "all"]);
    }
}
