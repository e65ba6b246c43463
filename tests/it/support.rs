//! Shared test fixtures: an in-process SMTP server, a spawned paperboy on
//! port 0 with its own SQLite file, and an HTTP client without cookies.

#![allow(dead_code)]

use paperboy::app::{App, Overrides};
use paperboy::config::Config;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One message as the SMTP server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// How the SMTP server answers a recipient, chosen by local part:
/// `temp…@` 451, `rate…@` 421 4.7.28, `perm…@` 550 5.1.1, `full…@` 552,
/// `flaky…@` 451 for its first two attempts and then 250; everyone else
/// 250. `stall` delays the reply to DATA.
#[derive(Clone)]
struct SinkHandler {
    inbox: Arc<Mutex<Vec<Received>>>,
    helos: Arc<Mutex<usize>>,
    stall: Arc<Mutex<Duration>>,
    data_ends: Arc<Mutex<usize>>,
    tries: Arc<Mutex<HashMap<String, usize>>>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for SinkHandler {
    fn helo(&mut self, _ip: std::net::IpAddr, _domain: &str) -> mailin_embedded::Response {
        *self.helos.lock().unwrap() += 1;
        mailin_embedded::response::OK
    }

    fn mail(
        &mut self,
        _ip: std::net::IpAddr,
        _domain: &str,
        from: &str,
    ) -> mailin_embedded::Response {
        self.from = from.to_string();
        self.to.clear();
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn rcpt(&mut self, to: &str) -> mailin_embedded::Response {
        use mailin_embedded::response;
        let local = to.split('@').next().unwrap_or("");
        let tries = {
            let mut t = self.tries.lock().unwrap();
            let n = t.entry(to.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        match local {
            l if l.starts_with("temp") => response::INTERNAL_ERROR,
            l if l.starts_with("rate") => {
                mailin_embedded::Response::custom(421, "4.7.28 rate limited, slow down".into())
            }
            l if l.starts_with("perm") => {
                mailin_embedded::Response::custom(550, "5.1.1 no such user".into())
            }
            l if l.starts_with("full") => response::NO_STORAGE,
            l if l.starts_with("flaky") && tries <= 2 => response::INTERNAL_ERROR,
            _ => {
                self.to.push(to.to_string());
                response::OK
            }
        }
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        *self.data_ends.lock().unwrap() += 1;
        let stall = *self.stall.lock().unwrap();
        if !stall.is_zero() {
            std::thread::sleep(stall);
        }
        self.inbox.lock().unwrap().push(Received {
            from: self.from.clone(),
            to: self.to.clone(),
            data: std::mem::take(&mut self.data),
        });
        mailin_embedded::response::OK
    }
}

/// An SMTP server on a loopback port, running on its own threads for the
/// rest of the test process.
#[derive(Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    inbox: Arc<Mutex<Vec<Received>>>,
    helos: Arc<Mutex<usize>>,
    stall: Arc<Mutex<Duration>>,
    data_ends: Arc<Mutex<usize>>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    pub fn start_on(listener: TcpListener) -> SmtpSink {
        let addr = listener.local_addr().unwrap();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let helos = Arc::new(Mutex::new(0));
        let stall = Arc::new(Mutex::new(Duration::ZERO));
        let data_ends = Arc::new(Mutex::new(0));
        let handler = SinkHandler {
            inbox: inbox.clone(),
            helos: helos.clone(),
            stall: stall.clone(),
            data_ends: data_ends.clone(),
            tries: Arc::new(Mutex::new(HashMap::new())),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        std::thread::spawn(move || {
            let mut server = mailin_embedded::Server::new(handler);
            server
                .with_name("sink.test")
                .with_ssl(mailin_embedded::SslConfig::None)
                .unwrap()
                .with_num_threads(4)
                .with_tcp_listener(listener);
            let _ = server.serve();
        });
        SmtpSink {
            addr,
            inbox,
            helos,
            stall,
            data_ends,
        }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().clone()
    }

    pub fn messages_to(&self, rcpt: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == rcpt))
            .collect()
    }

    pub fn set_stall(&self, d: Duration) {
        *self.stall.lock().unwrap() = d;
    }

    /// Messages whose DATA ended (the reply may still be stalled).
    pub fn data_ends(&self) -> usize {
        *self.data_ends.lock().unwrap()
    }

    pub fn connections(&self) -> usize {
        *self.helos.lock().unwrap()
    }

    /// Waits until `rcpt` has at least `n` messages, or panics.
    pub async fn wait_for(&self, rcpt: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.messages_to(rcpt);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} message(s) to {rcpt}; have {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Config for a test: a temp database and outbox, SMTP to `sink` without
/// TLS (loopback), plus `extra` overrides as `PAPERBOY__…` pairs.
pub fn test_config(
    dir: &std::path::Path,
    sink: Option<SocketAddr>,
    base_url: &str,
    extra: &[(&str, &str)],
) -> Config {
    let mut env: HashMap<String, String> = HashMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    set(
        "PAPERBOY__DATABASE__PATH",
        dir.join("paperboy.sqlite").display().to_string(),
    );
    set(
        "PAPERBOY__MAIL__OUTBOX_DIR",
        dir.join("outbox").display().to_string(),
    );
    set("PAPERBOY__SERVER__BASE_URL", base_url.to_string());
    set(
        "PAPERBOY__MAIL__FROM",
        "paperboy <digest@paperboy.test>".into(),
    );
    set(
        "PAPERBOY__MAIL__LIST_ID",
        "Test digest <daily.paperboy.test>".into(),
    );
    set("PAPERBOY__SUBSCRIBE__PER_IP_PER_MINUTE", "10000".into());
    set("PAPERBOY__SERVER__SHUTDOWN_GRACE_SECS", "10".into());
    // Tests never touch the internet, and drive digest runs themselves
    // with a chosen `now` instead of the wall-clock tick.
    set("PAPERBOY__SOURCES__HUGGINGFACE__ENABLED", "false".into());
    set("PAPERBOY__DIGEST__CRON", "0 0 0 1 1 *".into());
    // No model download: tests that rank by meaning turn it on with the
    // local MiniLM weights (`semantic` module).
    set("PAPERBOY__RANK__SEMANTIC__ENABLED", "false".into());
    if let Some(addr) = sink {
        set("PAPERBOY__MAIL__TRANSPORT", "smtp".into());
        set("PAPERBOY__MAIL__SMTP__HOST", addr.ip().to_string());
        set("PAPERBOY__MAIL__SMTP__PORT", addr.port().to_string());
        set("PAPERBOY__MAIL__SMTP__TLS", "none".into());
        set("PAPERBOY__MAIL__SMTP__TIMEOUT_SECS", "5".into());
    }
    for (k, v) in extra {
        set(k, v.to_string());
    }
    Config::load_with_env(None, env).expect("test config is valid")
}

/// A running paperboy (web + workers + scheduler) on a loopback port.
pub struct TestApp {
    pub app: App,
    pub addr: SocketAddr,
    pub base_url: String,
    pub sink: SmtpSink,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
        Self::spawn_full(extra, Overrides::default()).await
    }

    /// A TestApp whose clock reads `now` (and stays there unless moved).
    pub async fn spawn_at(
        now: chrono::DateTime<chrono::Utc>,
        extra: &[(&str, &str)],
    ) -> (TestApp, paperboy::clock::ManualClock) {
        let clock = paperboy::clock::ManualClock::new(now);
        let t = Self::spawn_full(
            extra,
            Overrides {
                clock: Some(std::sync::Arc::new(clock.clone())),
                ..Default::default()
            },
        )
        .await;
        (t, clock)
    }

    pub async fn spawn_full(extra: &[(&str, &str)], overrides: Overrides) -> TestApp {
        // Logs (warnings and up) go to stderr, which the test harness does
        // not capture: they appear beside the test output, not per test.
        paperboy::telemetry::init("warn", paperboy::config::LogFormat::Text);
        let sink = SmtpSink::start();
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base_url = format!("http://{addr}");
        let config = test_config(dir.path(), Some(sink.addr), &base_url, extra);
        let app = App::build(config, overrides).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(paperboy::cli::run_daemon(
            app.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        // Wait until start-up (lease recovery, workers, scheduler) is done
        // and the web server answers, so nothing of it races the test.
        let probe = client();
        let deadline = Instant::now() + Duration::from_secs(15);
        while !probe
            .get(format!("{base_url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "test app did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        TestApp {
            app,
            addr,
            base_url,
            sink,
            dir,
            client: client(),
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stores the recorded Hugging Face list of 2026-06-12 (30 papers).
    pub async fn seed_hf_fixture(&self) {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/hf_daily_papers_2026-06-12.json"
        ))
        .unwrap();
        let papers = paperboy::sources::parse_hf(&bytes, None).unwrap();
        self.app
            .store
            .upsert_papers(paperboy::store::papers::PaperBatch {
                source: paperboy::domain::SourceKind::HuggingFace,
                papers: &papers,
                observed_at: chrono::DateTime::parse_from_rfc3339("2026-06-12T09:00:00Z")
                    .unwrap()
                    .to_utc(),
                validators: &[],
            })
            .await
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("paperboy.sqlite")
    }

    /// POSTs a urlencoded form to /subscribe; the redirect that answers a
    /// valid request is followed, as a browser would.
    pub async fn subscribe(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        let r = self
            .client
            .post(self.url("/subscribe"))
            .form(fields)
            .send()
            .await
            .unwrap();
        self.follow(r).await
    }

    /// Follows a 303 See Other (post/redirect/get) with a GET; any other
    /// answer is returned as it is.
    pub async fn follow(&self, r: reqwest::Response) -> reqwest::Response {
        if r.status() != reqwest::StatusCode::SEE_OTHER {
            return r;
        }
        let to = r.headers()[reqwest::header::LOCATION]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            to.starts_with(&self.url("/")),
            "redirects stay on this site: {to}"
        );
        self.client.get(to).send().await.unwrap()
    }

    /// POSTs `fields` to a settings page and follows the redirect.
    pub async fn manage_post(&self, manage: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let r = self.client.post(manage).form(fields).send().await.unwrap();
        self.follow(r).await
    }

    pub async fn subscribe_email(&self, email: &str) -> reqwest::Response {
        self.subscribe(&[
            ("email", email),
            ("topics", "speculative decoding\nRAG"),
            ("send_time", "07:30"),
            ("time_zone", "Europe/Berlin"),
        ])
        .await
    }

    /// Subscribes `email`, waits for the confirmation and returns its link.
    pub async fn confirmation_link(&self, email: &str, nth: usize) -> String {
        let msgs = self.sink.wait_for(email, nth).await;
        links_in(&msgs[nth - 1])
            .into_iter()
            .find(|l| l.contains("/confirm/"))
            .expect("confirmation mail has a confirm link")
    }

    /// Full double opt-in; returns the manage URL shown after confirming.
    pub async fn subscribe_and_confirm(&self, email: &str) -> String {
        let before = self.sink.messages_to(email).len();
        assert_eq!(self.subscribe_email(email).await.status(), 200);
        let link = self.confirmation_link(email, before + 1).await;
        let page = self.client.post(&link).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let body = page.text().await.unwrap();
        extract_links(&body)
            .into_iter()
            .find(|l| l.contains("/manage/"))
            .expect("confirmed page links to settings")
    }

    pub async fn state_of(&self, email: &str) -> Option<String> {
        let addr = paperboy::domain::EmailAddress::parse(email).unwrap();
        self.app
            .store
            .subscriber_by_email(&addr)
            .await
            .unwrap()
            .map(|s| s.state.as_str().to_string())
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

/// A client like a mailbox provider's: no cookie store, no redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Every URL in a received message's decoded text part.
pub fn links_in(m: &Received) -> Vec<String> {
    let parsed = mail_parser::MessageParser::default()
        .parse(&m.data)
        .expect("parseable mail");
    let text = parsed.body_text(0).expect("text part").into_owned();
    extract_links(&text)
}

pub fn extract_links(s: &str) -> Vec<String> {
    let mut finder = linkify::LinkFinder::new();
    finder.kinds(&[linkify::LinkKind::Url]);
    finder.links(s).map(|l| l.as_str().to_string()).collect()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
