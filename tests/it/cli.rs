//! The operator's command line, against the real binary: imports are all
//! or nothing, suppressions are never lifted by an operator, one mailbox
//! is one subscriber, and input or configuration errors are caught before
//! anything is created on disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A paperboy installation in a temp directory, its data in `data/`.
struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_paperboy"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env(
                "PAPERBOY__DATABASE__PATH",
                self.data_dir().join("paperboy.sqlite"),
            )
            .env("PAPERBOY__MAIL__OUTBOX_DIR", self.dir.path().join("outbox"))
            .env("PAPERBOY__SOURCES__HUGGINGFACE__ENABLED", "false")
            // No test downloads a model: these rank lexically.
            .env("PAPERBOY__RANK__SEMANTIC__ENABLED", "false")
            .env("PAPERBOY__LOGGING__LEVEL", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, &[]);
        assert!(
            out.status.success(),
            "paperboy {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(!out.status.success(), "paperboy {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    /// `subscribers list`: (address, state) per subscriber.
    fn listed(&self) -> Vec<(String, String)> {
        self.ok(&["subscribers", "list"])
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[1].to_string(), f[2].to_string())
            })
            .collect()
    }
}

fn assert_nothing_created(dir: &Path) {
    assert!(
        !dir.exists(),
        "{} was created: {:?}",
        dir.display(),
        std::fs::read_dir(dir).map(|d| d.count())
    );
}

#[test]
fn an_import_with_one_invalid_row_lists_every_problem_and_writes_nothing() {
    let cli = Cli::new();
    let file = cli.file(
        "list.csv",
        "email,state,send_time,topics\n\
         ok@example.org,active,08:00,RAG\n\
         root@example.org,superuser,08:00,RAG\n\
         also-ok@example.org,,07:30,RAG\n\
         not-an-address,,25:61,RAG\n",
    );
    let err = cli.fails(&["subscribers", "import", &file, "--confirmed"], &[]);
    assert!(
        err.contains("line 3, column `state`: unknown state \"superuser\""),
        "{err}"
    );
    assert!(err.contains("line 5, column `email`"), "{err}");
    assert!(err.contains("line 5, column `send_time`"), "{err}");
    assert!(err.contains("2 invalid rows") && err.contains("nothing was imported"));
    // Validation failed before the database was opened: nothing on disk.
    assert_nothing_created(&cli.data_dir());

    let out = cli.ok(&[
        "subscribers",
        "import",
        &file,
        "--confirmed",
        "--skip-invalid",
    ]);
    assert!(
        out.contains("imported 2, skipped 0 existing, 0 suppressed, 0 unsubscribed, 2 invalid"),
        "{out}"
    );
    assert_eq!(
        cli.listed(),
        vec![
            ("ok@example.org".into(), "active".into()),
            ("also-ok@example.org".into(), "active".into())
        ]
    );
}

#[test]
fn an_unknown_column_is_an_error_naming_it() {
    let cli = Cli::new();
    let csv = cli.file("a.csv", "email,role\nok@example.org,admin\n");
    let err = cli.fails(&["subscribers", "import", &csv], &[]);
    assert!(
        err.contains("line 1, column `role`: unknown column"),
        "{err}"
    );
    let jsonl = cli.file(
        "a.jsonl",
        "{\"email\":\"ok@example.org\"}\n{\"email\":\"b@example.org\",\"is_admin\":true}\n",
    );
    let err = cli.fails(&["subscribers", "import", &jsonl, "--format", "jsonl"], &[]);
    assert!(
        err.contains("line 2, column `is_admin`: unknown column"),
        "{err}"
    );
    assert_nothing_created(&cli.data_dir());
}

/// `subscribers add EMAIL --topic RAG --confirmed`.
fn add(email: &str) -> [&str; 6] {
    ["subscribers", "add", email, "--topic", "RAG", "--confirmed"]
}

#[test]
fn imports_and_operator_adds_never_lift_a_suppression() {
    let cli = Cli::new();
    cli.ok(&add("gone@example.org"));
    cli.ok(&add("Stays@example.org"));
    cli.ok(&["subscribers", "remove", "gone@example.org"]);
    let err = cli.fails(&add("GONE@example.org"), &[]);
    assert!(err.contains("suppressed (manual)"), "{err}");
    let file = cli.file(
        "list.csv",
        "email,fallback_trending\ngone@example.org,true\nstays@example.org,true\nnew@example.org,true\nNEW@example.org,true\n",
    );
    let out = cli.ok(&["subscribers", "import", &file, "--confirmed"]);
    assert!(
        out.contains("imported 1, skipped 2 existing, 1 suppressed, 0 unsubscribed, 0 invalid"),
        "{out}"
    );
    assert_eq!(
        cli.listed(),
        vec![
            ("Stays@example.org".into(), "active".into()),
            ("new@example.org".into(), "active".into())
        ]
    );
}

#[test]
fn bad_input_creates_no_data_directory_database_or_key() {
    let cli = Cli::new();
    let err = cli.fails(&["subscribers", "add", "not an address"], &[]);
    assert!(err.contains("does not look like an email address"), "{err}");
    let err = cli.fails(
        &[
            "subscribers",
            "add",
            "a@example.org",
            "--send-time",
            "25:00",
        ],
        &[],
    );
    assert!(err.contains("send_time"), "{err}");
    let err = cli.fails(&["subscribers", "import", "missing.csv"], &[]);
    assert!(
        err.contains("cannot read") && err.contains("missing.csv"),
        "{err}"
    );
    let err = cli.fails(&["subscribers", "remove", "@nope"], &[]);
    assert!(err.contains("@nope"), "{err}");
    let err = cli.fails(&["subscribers", "list", "--state", "superuser"], &[]);
    assert!(err.contains("unknown state"), "{err}");
    assert_nothing_created(&cli.data_dir());
}

#[test]
fn config_check_catches_an_unreadable_password_file_and_a_bogus_log_level() {
    let cli = Cli::new();
    let missing = cli.dir.path().join("no-such-password");
    let smtp = [
        ("PAPERBOY__MAIL__TRANSPORT", "smtp"),
        ("PAPERBOY__MAIL__SMTP__HOST", "127.0.0.1"),
        ("PAPERBOY__MAIL__SMTP__TLS", "none"),
        (
            "PAPERBOY__MAIL__SMTP__PASSWORD_FILE",
            missing.to_str().unwrap(),
        ),
    ];
    let err = cli.fails(&["config", "check"], &smtp);
    assert!(
        err.contains("`mail.smtp.password_file`") && err.contains("cannot read"),
        "{err}"
    );
    // A start-up command stops at the same check, before creating anything.
    let err = cli.fails(&["subscribers", "list"], &smtp);
    assert!(err.contains("`mail.smtp.password_file`"), "{err}");
    for level in ["verbose??", "paperboy=loud", "info,,=debug"] {
        let err = cli.fails(&["config", "check"], &[("PAPERBOY__LOGGING__LEVEL", level)]);
        assert!(err.contains("`logging.level`"), "{level}: {err}");
    }
    for level in ["info", "warn,paperboy=debug", "paperboy::digest=trace,off"] {
        let out = cli.run(&["config", "check"], &[("PAPERBOY__LOGGING__LEVEL", level)]);
        assert!(out.status.success(), "{level}: {:?}", out);
    }
    assert_nothing_created(&cli.data_dir());
}

#[test]
fn one_mailbox_typed_three_ways_is_one_subscriber_sent_to_the_first_form() {
    let cli = Cli::new();
    cli.ok(&add("Keeper@example.com"));
    for other in ["keeper@example.com", "KEEPER@EXAMPLE.COM"] {
        let err = cli.fails(&add(other), &[]);
        assert!(err.contains("already subscribed"), "{other}: {err}");
    }
    assert_eq!(
        cli.listed(),
        vec![("Keeper@example.com".into(), "active".into())]
    );
}

/// Stores one paper about `title`, listed on `day`, in the CLI's database.
fn store_paper(cli: &Cli, id: &str, title: &str, day: chrono::NaiveDate) {
    let env = std::collections::HashMap::from([(
        "PAPERBOY__DATABASE__PATH".to_string(),
        cli.data_dir().join("paperboy.sqlite").display().to_string(),
    )]);
    let config = paperboy::config::Config::load_with_env(None, env).unwrap();
    let (id, _) = paperboy::domain::PaperId::parse_arxiv(id).unwrap();
    let mut paper = paperboy::domain::Paper::new(id, title, "An abstract about it.");
    paper.listed_on = Some(day);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = paperboy::store::Store::open(&config.database)
            .await
            .unwrap();
        store
            .upsert_papers(paperboy::store::papers::PaperBatch {
                source: paperboy::domain::SourceKind::ArxivApi,
                papers: &[paper],
                observed_at: chrono::Utc::now(),
                validators: &[],
            })
            .await
            .unwrap();
        store.close().await;
    });
}

#[test]
fn preview_says_whether_no_papers_are_stored_or_none_match() {
    let cli = Cli::new();
    let out = cli.ok(&["preview", "--topic", "graph neural networks"]);
    assert!(out.contains("No papers are stored yet"), "{out}");

    let today = chrono::Utc::now().date_naive();
    store_paper(
        &cli,
        "2401.00001",
        "Old news on graph neural networks",
        today - chrono::Duration::days(60),
    );
    let out = cli.ok(&["preview", "--topic", "graph neural networks"]);
    assert!(out.contains("No stored paper was listed"), "{out}");

    store_paper(&cli, "2401.00002", "Speculative decoding at scale", today);
    let out = cli.ok(&["preview", "--topic", "graph neural networks"]);
    assert!(out.contains("None of the 1 candidates"), "{out}");
    assert!(!out.contains("paperboy fetch"), "{out}");
    let out = cli.ok(&["preview", "--topic", "speculative decoding"]);
    assert!(out.contains("Speculative decoding at scale"), "{out}");
}

#[test]
fn an_add_or_import_with_nothing_to_look_for_is_refused_and_commas_separate_topics() {
    let cli = Cli::new();
    // A subscriber without a topic would never get a digest.
    let err = cli.fails(
        &["subscribers", "add", "none@example.org", "--confirmed"],
        &[],
    );
    assert!(err.contains("give at least one --topic"), "{err}");
    assert_nothing_created(&cli.data_dir());
    let file = cli.file(
        "list.csv",
        "email,topics,authors,fallback_trending\n\
         bare@example.org,,,\n\
         topics@example.org,\"RAG, diffusion models; LLM safety\",,\n\
         author@example.org,,\"Lovelace, Ada\",\n\
         trending@example.org,,,true\n",
    );
    let err = cli.fails(&["subscribers", "import", &file, "--confirmed"], &[]);
    assert!(
        err.contains("line 2, column `topics`: no topics, authors or categories"),
        "{err}"
    );
    assert!(err.contains("1 invalid rows"), "{err}");
    assert_nothing_created(&cli.data_dir());
    let out = cli.ok(&[
        "subscribers",
        "import",
        &file,
        "--confirmed",
        "--skip-invalid",
    ]);
    assert!(out.contains("imported 3,"), "{out}");
    // Commas, semicolons and new lines separate topics, in an import as
    // on the command line.
    cli.ok(&[
        "subscribers",
        "add",
        "comma@example.org",
        "--topic",
        "speculative decoding, RAG",
        "--confirmed",
    ]);
    let list = cli.ok(&["subscribers", "list"]);
    let topics_of = |email: &str| {
        list.lines()
            .find(|l| l.contains(email))
            .and_then(|l| l.rsplit('\t').next())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        topics_of("topics@example.org"),
        "RAG; diffusion models; LLM safety"
    );
    assert_eq!(topics_of("comma@example.org"), "speculative decoding; RAG");
}
