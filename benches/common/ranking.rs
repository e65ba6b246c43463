//! How a digest bench child ranks (`benches/digest.rs --model`).

/// How a child run ranks: by words only, or with the model in `dir`.
#[derive(Clone)]
pub enum Ranking {
    Lexical,
    Model(std::path::PathBuf),
}

impl Ranking {
    /// `--model [DIR]`: DIR, else `PAPERBOY_TEST_MODEL_DIR`.
    pub fn from_args(args: &[String]) -> Option<Ranking> {
        let i = args.iter().position(|a| a == "--model")?;
        let dir = match args
            .get(i + 1)
            .filter(|a| a.parse::<u64>().is_err() && !a.starts_with("--"))
        {
            Some(d) => d.into(),
            None => std::env::var_os("PAPERBOY_TEST_MODEL_DIR")
                .expect("--model needs a folder: --model DIR or PAPERBOY_TEST_MODEL_DIR")
                .into(),
        };
        let dir: std::path::PathBuf = dir;
        assert!(
            dir.join("model.safetensors").is_file(),
            "{} has no model.safetensors",
            dir.display()
        );
        Some(Ranking::Model(dir))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Ranking::Lexical => "lexical",
            Ranking::Model(_) => "model",
        }
    }

    /// The child's argument: `lexical` or the model folder.
    pub fn encode(&self) -> String {
        match self {
            Ranking::Lexical => "lexical".into(),
            Ranking::Model(d) => d.display().to_string(),
        }
    }

    pub fn decode(arg: &str) -> Ranking {
        match arg {
            "lexical" => Ranking::Lexical,
            dir => Ranking::Model(dir.into()),
        }
    }
}
