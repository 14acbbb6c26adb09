//! `citeflow eval` on the bundled gold: the fixed interface, and a floor under its figures.

mod support;

const SAMPLE_EPMC: [&str; 2] = ["data/sample/epmc/pubmed-1970s.jsonl.gz", "data/sample/epmc/pubmed-2021-update.jsonl.gz"];

/// Runs `citeflow` in the repository with `args`; returns its standard output.
fn citeflow(model: Option<&str>, args: &[&str]) -> Vec<u8> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_citeflow"));
    if let Some(model) = model {
        command.env("CITEFLOW_MODEL", model);
    }
    let output = command.current_dir(support::repository()).args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn eval_gold(model: Option<&str>) -> serde_json::Value {
    let mut args = vec!["eval", "--epmc"];
    args.extend(SAMPLE_EPMC);
    args.extend(["--gold", "data/sample/gold/positives.dev.jsonl", "data/sample/gold/negatives.dev.jsonl", "--json"]);
    serde_json::from_slice(&citeflow(model, &args)).unwrap()
}

#[test]
fn eval_reports_precision_and_recall_on_the_gold() {
    let result = eval_gold(None);
    assert_eq!(result, eval_gold(Some("training/scorer.onnx")), "the default is the bundled learned scorer");
    for field in ["precision", "recall", "f1", "true_positives", "false_positives", "false_negatives", "by_method"] {
        assert!(!result[field].is_null(), "missing {field}: {result}");
    }
    assert_eq!(result["references"], 5582);
    assert!(result["precision"].as_f64().unwrap() >= 0.995, "{result}");
    assert!(result["recall"].as_f64().unwrap() >= 0.98, "{result}");
}

#[test]
fn the_default_matcher_meets_the_targets_on_seeded_synthetic_references() {
    let dir = support::TempDir::new("synthetic");
    let (index, gold) = (dir.0.join("index.jsonl"), dir.0.join("gold.jsonl"));
    let (index, gold) = (index.to_str().unwrap(), gold.to_str().unwrap());
    let mut args = vec!["synth", "--seed", "5", "--positives", "3000", "--negatives", "3000", "--index", index, "--gold", gold, "--epmc"];
    args.extend(SAMPLE_EPMC);
    citeflow(None, &args);
    let result: serde_json::Value = serde_json::from_slice(&citeflow(None, &["eval", "--epmc", index, "--gold", gold, "--json"])).unwrap();
    assert_eq!(result["positives"], 3000);
    assert!(result["precision"].as_f64().unwrap() >= 0.99, "{result}");
    assert!(result["recall"].as_f64().unwrap() >= 0.95, "{result}");
}

#[test]
fn the_rule_scorer_remains_a_choice() {
    let result = eval_gold(Some("rules"));
    assert!(result["precision"].as_f64().unwrap() >= 0.99, "{result}");
    assert!(result["recall"].as_f64().unwrap() >= 0.96, "{result}");
}
