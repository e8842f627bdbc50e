//! `sweep world stats`: the tiny profile's world as a user inspects it.
mod common;

#[test]
fn world_stats_json_reports_every_family_with_human_agreement_in_range() {
    let out = common::sweep(common::repo(), &["world", "stats", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let families = stats["families"].as_array().expect("a list of families");
    let names: Vec<&str> = families
        .iter()
        .map(|f| f["family"].as_str().unwrap())
        .collect();
    assert_eq!(names, cwpo::data::synthetic::FAMILIES);
    for f in families {
        let agreement = f["agreement"].as_f64().unwrap();
        assert!(
            (0.60..=0.75).contains(&agreement),
            "{}: human-vs-gold agreement {agreement}",
            f["family"]
        );
        assert!(!f["examples"].as_array().unwrap().is_empty());
    }
}

#[test]
fn world_stats_of_a_missing_profile_file_names_it() {
    let out = common::sweep(
        common::repo(),
        &["world", "stats", "--profile", "no/such/profile.toml"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/profile.toml"), "{err}");
}
