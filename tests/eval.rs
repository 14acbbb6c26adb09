//! `citeflow eval` on the bundled gold: the fixed interface, and a floor under its figures.

mod support;

fn eval_gold(model: Option<&str>) -> serde_json::Value {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_citeflow"));
    if let Some(model) = model {
        command.env("CITEFLOW_MODEL", model).env("CITEFLOW_MIN_SCORE", "0.5");
    }
    let output = command
        .current_dir(support::repository())
        .args(["eval", "--epmc", "data/sample/epmc/pubmed-1970s.jsonl.gz", "data/sample/epmc/pubmed-2021-update.jsonl.gz"])
        .args(["--gold", "data/sample/gold/positives.dev.jsonl", "data/sample/gold/negatives.dev.jsonl", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn eval_reports_precision_and_recall_on_the_gold() {
    let result = eval_gold(None);
    for field in ["precision", "recall", "f1", "true_positives", "false_positives", "false_negatives", "by_method"] {
        assert!(!result[field].is_null(), "missing {field}: {result}");
    }
    assert_eq!(result["references"], 5582);
    assert!(result["precision"].as_f64().unwrap() >= 0.99, "{result}");
    assert!(result["recall"].as_f64().unwrap() >= 0.96, "{result}");
}

#[test]
fn the_onnx_scorer_runs_inside_the_dataflow() {
    let result = eval_gold(Some("training/scorer.onnx"));
    assert!(result["precision"].as_f64().unwrap() >= 0.99, "{result}");
    assert!(result["recall"].as_f64().unwrap() >= 0.96, "{result}");
}
