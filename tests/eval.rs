//! `citeflow eval` on the bundled gold: the fixed interface, and a floor under its figures.

mod support;

#[test]
fn eval_reports_precision_and_recall_on_the_gold() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_citeflow"))
        .current_dir(support::repository())
        .args(["eval", "--epmc", "data/sample/epmc/pubmed-1970s.jsonl.gz", "data/sample/epmc/pubmed-2021-update.jsonl.gz"])
        .args(["--gold", "data/sample/gold/positives.dev.jsonl", "data/sample/gold/negatives.dev.jsonl", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for field in ["precision", "recall", "f1", "true_positives", "false_positives", "false_negatives", "by_method"] {
        assert!(!result[field].is_null(), "missing {field}: {result}");
    }
    assert_eq!(result["references"], 5582);
    assert!(result["precision"].as_f64().unwrap() >= 0.99, "{result}");
    assert!(result["recall"].as_f64().unwrap() >= 0.96, "{result}");
}
