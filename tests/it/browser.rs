//! The main flows in a real headless Chromium, driven over WebDriver
//! (chromedriver, spoken to as JSON over HTTP): subscribe with the live
//! preview, confirm, edit settings with the live preview, unsubscribe;
//! and on every page, WCAG AA contrast (4.5:1) of every text against its
//! background, computed from the browser's styles in both colour schemes.
//!
//! Needs Debian's `chromium` and `chromium-driver`, which `scripts/test`
//! installs. Without them the test says it is skipped, loudly; where the
//! test command installed them (`PAPERBOY_BROWSER_TEST=required`) their
//! absence fails instead.

use crate::support::{free_port, TestApp};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=390,900",
];

fn find(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {n}")])
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| n.to_string())
    })
}

/// A chromedriver process and one browser session.
struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// None (with a message saying why) when Chromium is not installed.
    async fn start() -> Option<Browser> {
        let (Some(driver), Some(chromium)) = (
            find(&["chromedriver"]),
            find(&["chromium", "chromium-browser"]),
        ) else {
            let msg = "browser test SKIPPED: chromium and chromedriver are not installed \
                       (Debian packages chromium, chromium-driver; scripts/test installs them)";
            assert!(
                std::env::var("PAPERBOY_BROWSER_TEST").as_deref() != Ok("required"),
                "{msg}, but the test command said they were installed"
            );
            eprintln!("{msg}");
            return None;
        };
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == json!(true) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let binary = Command::new("sh")
            .args(["-c", &format!("command -v {chromium}")])
            .output()
            .unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": String::from_utf8_lossy(&binary.stdout).trim(),
                "args": args,
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {r}"))
            .to_string();
        Some(Browser {
            driver: child,
            http,
            session: format!("{base}/session/{session}"),
            _profile: profile,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let req = self.http.request(method, &url);
        let req = if body.is_null() { req } else { req.json(&body) };
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            json!({}),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            json!({}),
        )
        .await;
    }

    async fn text(&self) -> String {
        self.js("return document.body.innerText;", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until `script` returns something truthy; panics with `what`.
    async fn wait_for(&self, script: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.js(script, json!([])).await;
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn color_scheme(&self, scheme: &str) {
        self.cmd(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({ "cmd": "Emulation.setEmulatedMedia", "params": {
                "features": [{ "name": "prefers-color-scheme", "value": scheme }]
            }}),
        )
        .await;
    }

    /// With `PAPERBOY_SCREENSHOTS=dir`, saves what the reader sees, for a
    /// person to look at (`{dir}/{page}-{scheme}.png`).
    async fn screenshot(&self, page: &str, scheme: &str) {
        let Ok(dir) = std::env::var("PAPERBOY_SCREENSHOTS") else {
            return;
        };
        let png = self
            .cmd(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let name = format!("{}-{scheme}.png", page.replace(' ', "-"));
        std::fs::write(std::path::Path::new(&dir).join(name), bytes).unwrap();
    }

    /// Every visible text on the page against its effective background,
    /// in both colour schemes; panics listing the pairs under 4.5:1.
    async fn assert_contrast(&self, page: &str) {
        for scheme in ["light", "dark"] {
            self.color_scheme(scheme).await;
            let matched = self
                .js(
                    "return matchMedia('(prefers-color-scheme: ' + arguments[0] + ')').matches;",
                    json!([scheme]),
                )
                .await;
            assert_eq!(matched, json!(true), "{scheme} scheme is emulated");
            let report = self.js(CONTRAST_JS, json!([])).await;
            let checked = report["checked"].as_u64().unwrap();
            assert!(checked >= 5, "{page} ({scheme}): only {checked} texts");
            self.screenshot(page, scheme).await;
            let failures = report["failures"].as_array().unwrap();
            assert!(
                failures.is_empty(),
                "{page} ({scheme}): text under WCAG AA 4.5:1: {failures:#?}"
            );
        }
        self.color_scheme("light").await;
    }
}

/// For each visible element with its own text (and each button, input,
/// textarea and select): its colour and the first opaque background up
/// the tree (semi-transparent layers blended), and the WCAG ratio.
const CONTRAST_JS: &str = r#"
function rgba(s) {
  var m = s.match(/rgba?\(([^)]+)\)/); if (!m) return null;
  var p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
}
function blend(top, under) {
  var a = top.a;
  return { r: top.r * a + under.r * (1 - a), g: top.g * a + under.g * (1 - a), b: top.b * a + under.b * (1 - a), a: 1 };
}
function background(el) {
  var layers = [];
  for (var e = el; e; e = e.parentElement) {
    var c = rgba(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
  }
  var canvas = matchMedia('(prefers-color-scheme: dark)').matches ? { r: 18, g: 18, b: 18, a: 1 } : { r: 255, g: 255, b: 255, a: 1 };
  var out = layers.length && layers[layers.length - 1].a >= 1 ? layers.pop() : canvas;
  while (layers.length) out = blend(layers.pop(), out);
  return out;
}
function lum(c) {
  var f = function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
}
var failures = [], checked = 0;
document.querySelectorAll('body *').forEach(function (el) {
  var own = Array.prototype.some.call(el.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
  var control = /^(BUTTON|INPUT|TEXTAREA|SELECT)$/.test(el.tagName) && el.type !== 'hidden' && el.type !== 'checkbox';
  if (!own && !control) return;
  var st = getComputedStyle(el), r = el.getBoundingClientRect();
  if (st.visibility === 'hidden' || st.display === 'none' || r.width === 0 || r.height === 0 || el.closest('[hidden],[aria-hidden=true]')) return;
  var bg = background(el), fg = rgba(st.color);
  if (fg.a < 1) fg = blend(fg, bg);
  var a = lum(fg), b = lum(bg), ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  checked++;
  if (ratio < 4.5) failures.push({ element: el.tagName + (el.className ? '.' + el.className : ''), text: (el.innerText || el.value || '').slice(0, 40), color: st.color, background: 'rgb(' + [bg.r, bg.g, bg.b].map(Math.round).join(', ') + ')', ratio: Math.round(ratio * 100) / 100 });
});
return { checked: checked, failures: failures };
"#;

#[tokio::test]
async fn a_reader_subscribes_confirms_edits_settings_and_unsubscribes_in_a_real_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-12T12:00:00Z")
        .unwrap()
        .to_utc();
    let (t, _clock) = TestApp::spawn_at(now, &[]).await;
    t.seed_hf_fixture().await;
    let email = "reader@example.org";

    // Subscribe, watching the live preview fill as topics are typed.
    b.goto(&t.url("/")).await;
    b.wait_for(
        "return document.querySelectorAll('#trending li').length;",
        "the trending list",
    )
    .await;
    b.assert_contrast("subscribe page").await;
    b.type_into("#email", email).await;
    b.type_into("#topics", "video generation").await;
    let n = b
        .wait_for(
            "return document.querySelectorAll('#preview-list li').length;",
            "the live preview on the subscribe page",
        )
        .await;
    assert!(n.as_u64().unwrap() >= 1);
    b.assert_contrast("subscribe page with its preview").await;
    b.js(
        "document.getElementById('send_time').value = '07:30';",
        json!([]),
    )
    .await;
    b.click("form.card button[type=submit]").await;
    b.wait_for(
        "return document.body.innerText.indexOf('Check your inbox') >= 0;",
        "the subscribe answer",
    )
    .await;
    assert_eq!(t.state_of(email).await.as_deref(), Some("pending"));

    // Confirm from the mailed link: a page with a button, then settings.
    let link = t.confirmation_link(email, 1).await;
    b.goto(&link).await;
    b.assert_contrast("confirm page").await;
    b.click("form button[type=submit]").await;
    b.wait_for(
        "return document.body.innerText.indexOf('You are subscribed') >= 0;",
        "the confirmed page",
    )
    .await;
    assert_eq!(t.state_of(email).await.as_deref(), Some("active"));
    let manage = b
        .js(
            "var a = document.querySelector('a[href*=\"/manage/\"]'); return a && a.href;",
            json!([]),
        )
        .await;
    let manage = manage.as_str().expect("a link to the settings").to_string();

    // Someone with a paper in the fixture, to follow.
    let followed = {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/hf_daily_papers_2026-06-12.json"
        ))
        .unwrap();
        paperboy::sources::parse_hf(&bytes, None).unwrap()[0].authors[0].clone()
    };

    // Edit settings: the preview follows the edited topics; save.
    b.goto(&manage).await;
    b.wait_for(
        "return document.querySelectorAll('#preview-list li').length;",
        "the settings page's preview of the stored topics",
    )
    .await;
    let before = b
        .js(
            "return document.getElementById('preview-list').innerText;",
            json!([]),
        )
        .await;
    b.type_into("#topics", "reinforcement learning").await;
    b.wait_for(
        &format!(
            "var l = document.getElementById('preview-list'); return l.children.length && l.innerText !== {};",
            before
        ),
        "the preview to follow the edited topics",
    )
    .await;
    b.assert_contrast("settings page").await;
    // A followed author reaches the preview as well (the whole profile
    // being edited, not only its topics).
    let with_topics = b
        .js(
            "return document.getElementById('preview-list').innerText;",
            json!([]),
        )
        .await;
    b.type_into("#topics", "").await;
    b.type_into("#authors", &followed).await;
    b.wait_for(
        &format!(
            "var l = document.getElementById('preview-list'); return l.children.length && l.innerText !== {};",
            with_topics
        ),
        "the preview to follow the followed author",
    )
    .await;
    b.type_into("#authors", "").await;
    b.type_into("#topics", "reinforcement learning").await;

    // A time the hint does not allow comes back with its message beside
    // the field, which has the focus; the day of a weekly digest is one
    // choice of "How often".
    assert_eq!(
        b.js("return !!document.getElementById('weekly_day');", json!([]))
            .await,
        json!(false)
    );
    b.js(
        "document.getElementById('send_time').value = '8 am'; document.getElementById('frequency').value = 'weekly:friday';",
        json!([]),
    )
    .await;
    b.click("form.card button[type=submit]").await;
    b.wait_for(
        "return document.activeElement && document.activeElement.id === 'send_time' && document.activeElement.getAttribute('aria-invalid') === 'true';",
        "focus on the field in error",
    )
    .await;
    assert!(b.text().await.contains("24-hour clock"));
    b.assert_contrast("settings page with an error").await;
    b.type_into("#send_time", "06:45").await;
    b.click("form.card button[type=submit]").await;
    b.wait_for(
        "return document.body.innerText.indexOf('Your settings are saved') >= 0;",
        "the saved notice",
    )
    .await;
    // Post/redirect/get: the page shown is a GET that a reload repeats
    // harmlessly.
    let shown = b.js("return location.search;", json!([])).await;
    assert_eq!(shown, json!("?done=saved"));
    let addr = paperboy::domain::EmailAddress::parse(email).unwrap();
    let sub = t
        .app
        .store
        .subscriber_by_email(&addr)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.preferences.topics, vec!["reinforcement learning"]);
    assert_eq!(sub.preferences.frequency.encode(), "weekly:friday");
    b.assert_contrast("settings page with a notice").await;

    // Pausing shows Resume beside the notice, at the top of the page.
    b.click("form input[value=pause] + button").await;
    b.wait_for(
        "return document.getElementById('paused');",
        "the paused notice",
    )
    .await;
    let near = b
        .js(
            "var n = document.getElementById('paused').getBoundingClientRect(); var r = document.querySelector('#paused button').getBoundingClientRect(); return r.top - n.top < 100 && r.top < window.innerHeight;",
            json!([]),
        )
        .await;
    assert_eq!(near, json!(true), "Resume is beside the paused notice");
    b.click("#paused button").await;
    b.wait_for(
        "return document.body.innerText.indexOf('Digests are on again') >= 0;",
        "the resumed notice",
    )
    .await;

    // Deleting asks first, inside the page, with a way back.
    b.click("form input[value=delete] + button").await;
    b.wait_for(
        "var b = [].find.call(document.querySelectorAll('main button'), function (x) { return x.innerText === 'Yes, delete everything'; }); return b && !!b.closest('main');",
        "the delete confirmation inside the main content",
    )
    .await;
    b.assert_contrast("delete confirmation").await;
    b.click("main form.actions a").await;
    b.wait_for(
        "return document.body.innerText.indexOf('Your digest settings') >= 0;",
        "the settings page after cancelling",
    )
    .await;
    assert_eq!(t.state_of(email).await.as_deref(), Some("active"));

    // Unsubscribe from the settings page's link, with one press.
    let unsubscribe = b
        .js(
            "var a = document.querySelector('a[href*=\"/unsubscribe/\"]'); return a && a.href;",
            json!([]),
        )
        .await;
    b.goto(unsubscribe.as_str().expect("an unsubscribe link"))
        .await;
    b.assert_contrast("unsubscribe page").await;
    b.click("button.danger").await;
    b.wait_for(
        "return document.body.innerText.indexOf('You are unsubscribed') >= 0;",
        "the unsubscribed page",
    )
    .await;
    assert_eq!(t.state_of(email).await.as_deref(), Some("unsubscribed"));
    assert!(b.text().await.contains("no further digests"));
    t.stop().await;
}
