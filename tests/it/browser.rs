//! The main flows in a real headless Chromium, driven over WebDriver
//! (chromedriver, spoken to as JSON over HTTP): subscribe with the live
//! preview and the topics as read, confirm, edit settings with the live
//! preview, unsubscribe and find the way back; on every page, WCAG AA
//! contrast (4.5:1) of every text against its background, computed from
//! the browser's styles in both colour schemes, with screenshots at 1280
//! and 390 px; and the mails as a phone shows them (no word broken but the
//! raw link, a preheader of whole clauses, feedback targets of 24 × 24 px).
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

    /// Runs a DevTools command (Emulation, Page, …) in the page.
    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({ "cmd": cmd, "params": params }),
        )
        .await
    }

    async fn color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .await;
    }

    /// Lays the page out `width` CSS pixels wide (a phone at 390, a
    /// laptop at 1280).
    async fn viewport(&self, width: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    }

    /// The browser's own time zone, as a reader abroad would have it.
    async fn time_zone(&self, zone: &str) {
        self.cdp(
            "Emulation.setTimezoneOverride",
            json!({ "timezoneId": zone }),
        )
        .await;
    }

    /// With `PAPERBOY_SCREENSHOTS=dir`, saves the whole page as the reader
    /// sees it, for a person to look at (`{dir}/{page}-{width}-{scheme}.png`).
    async fn screenshot(&self, page: &str, width: u32, scheme: &str) {
        let Ok(dir) = std::env::var("PAPERBOY_SCREENSHOTS") else {
            return;
        };
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        let name = format!("{}-{width}-{scheme}.png", page.replace(' ', "-"));
        std::fs::write(std::path::Path::new(&dir).join(name), bytes).unwrap();
    }

    /// Every visible text on the page against its effective background,
    /// in both colour schemes; panics listing the pairs under 4.5:1. Takes
    /// the screenshots at both widths in both schemes, and leaves the page
    /// light and 390 px wide.
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
            for width in [1280, 390] {
                self.viewport(width).await;
                let report = self.js(CONTRAST_JS, json!([])).await;
                let checked = report["checked"].as_u64().unwrap();
                assert!(checked >= 5, "{page} ({scheme}): only {checked} texts");
                self.screenshot(page, width, scheme).await;
                let failures = report["failures"].as_array().unwrap();
                assert!(
                    failures.is_empty(),
                    "{page} ({scheme}, {width} px): text under WCAG AA 4.5:1: {failures:#?}"
                );
            }
        }
        self.color_scheme("light").await;
    }

    /// Replaces the page with `html` (a mail's HTML part), as a mail
    /// client shows it.
    async fn show_html(&self, html: &str) {
        self.goto("about:blank").await;
        self.js(
            "document.open(); document.write(arguments[0]); document.close();",
            json!([html]),
        )
        .await;
    }

    /// Vertical centre and top of the first element matching `css`.
    async fn rect(&self, css: &str) -> Value {
        self.js(
            "var r = document.querySelector(arguments[0]).getBoundingClientRect(); \
             return { top: r.top, mid: r.top + r.height / 2, width: r.width, height: r.height };",
            json!([css]),
        )
        .await
    }
}

/// Only one browser at a time: two cores are shared by the whole suite.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// The vertical distance, in CSS pixels, between the centres (`mid`) or
/// tops (`top`) of two measured elements.
fn apart(a: &Value, b: &Value, key: &str) -> f64 {
    (a[key].as_f64().unwrap() - b[key].as_f64().unwrap()).abs()
}

#[tokio::test]
async fn a_reader_subscribes_confirms_edits_settings_and_unsubscribes_in_a_real_browser() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-12T12:00:00Z")
        .unwrap()
        .to_utc();
    let (t, _clock) = TestApp::spawn_at(now, &[]).await;
    t.seed_hf_fixture().await;
    let email = "reader@example.org";
    // The reader's browser keeps Berlin time; they read mail in New York.
    b.time_zone("Europe/Berlin").await;

    subscribe_flow(&b, &t, email).await;
    let pending = pending_choices(&t).await;
    assert_eq!(pending.len(), 1, "the like waits with the subscription");
    let manage = confirm_flow(&b, &t, email).await;
    // Confirming turned the choice into feedback.
    let id = t
        .app
        .store
        .subscriber_by_email(&paperboy::domain::EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let fb = t.app.store.feedback_of(id).await.unwrap();
    assert_eq!(fb.len(), 1);
    assert_eq!(
        (fb[0].paper.as_str(), fb[0].action),
        (
            pending[0].0.as_str(),
            paperboy::domain::FeedbackAction::More
        )
    );
    assert!(pending_choices(&t).await.is_empty());
    settings_flow(&b, &t, email, &manage).await;

    // Unsubscribe from the settings page's link, with one press.
    b.goto(&manage).await;
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
    let text = b.text().await;
    assert!(text.contains("no further digests"));
    // A way back: resume from the settings, or subscribe again.
    assert!(
        text.contains("Changed your mind? Resume from your settings page"),
        "{text}"
    );
    assert!(text.contains("Subscribe again"), "{text}");
    b.assert_contrast("unsubscribed page").await;
    b.click("ul.links a").await;
    b.wait_for(
        "return document.body.innerText.indexOf('You are unsubscribed and receive no digests') >= 0;",
        "the settings page offering to subscribe again",
    )
    .await;
    t.stop().await;
}

/// The subscribe page: the time-zone list, the rule that asks for
/// something to look for, the topics as read with their counts, the live
/// preview, and the inbox page naming the address.
async fn subscribe_flow(b: &Browser, t: &TestApp, email: &str) {
    b.goto(&t.url("/")).await;
    b.wait_for(
        "return document.querySelectorAll('#trending li').length;",
        "the trending list",
    )
    .await;
    // A plain select, grouped by region, with offsets, no old names; the
    // browser's zone preselected.
    let zones = b
        .js(
            "var s = document.getElementById('time_zone'); return { tag: s.tagName, groups: s.querySelectorAll('optgroup').length, \
             calcutta: !!s.querySelector('option[value=\"Asia/Calcutta\"]'), value: s.value, \
             label: s.options[s.selectedIndex].text };",
            json!([]),
        )
        .await;
    assert_eq!(zones["tag"], "SELECT");
    assert!(zones["groups"].as_u64().unwrap() >= 8, "{zones}");
    assert_eq!(zones["calcutta"], false);
    assert_eq!(zones["value"], "Europe/Berlin");
    assert_eq!(zones["label"], "Berlin (UTC+02:00)");
    b.assert_contrast("subscribe page").await;
    // "Send at" and the time zone line up, whatever their hints wrap to.
    b.viewport(1280).await;
    let (time, zone) = (b.rect("#send_time").await, b.rect("#time_zone").await);
    assert!(apart(&time, &zone, "top") <= 1.0, "{time} vs {zone}");
    b.viewport(390).await;

    // No topic at all: the usual field error, with the focus.
    b.type_into("#email", email).await;
    b.click("form.card button[type=submit]").await;
    b.wait_for(
        "return document.activeElement && document.activeElement.id === 'topics' && document.activeElement.getAttribute('aria-invalid') === 'true';",
        "focus on the topics in error",
    )
    .await;
    assert!(b.text().await.contains("Add at least one topic"));
    b.assert_contrast("subscribe page with no topic").await;

    // Topics separated by commas are read one by one, each with what it
    // found this week; the live preview fills.
    b.type_into("#topics", "video generation, zzqx").await;
    let read = b
        .wait_for(
            "var l = document.querySelectorAll('#topic-list li'); return l.length === 2 && l[1].className === 'empty' && document.getElementById('topic-list').innerText;",
            "the topics as read",
        )
        .await;
    let read = read.as_str().unwrap();
    assert!(
        read.contains("video generation — 1 paper in the last 7 days"),
        "{read}"
    );
    assert!(
        read.contains("zzqx — nothing in the last 7 days; try a broader wording"),
        "{read}"
    );
    let n = b
        .wait_for(
            "return document.querySelectorAll('#preview-list li').length;",
            "the live preview on the subscribe page",
        )
        .await;
    assert!(n.as_u64().unwrap() >= 1);
    b.assert_contrast("subscribe page with its preview").await;
    preview_choices_flow(b).await;
    b.js(
        "document.getElementById('send_time').value = '18:30'; document.getElementById('time_zone').value = 'America/New_York';",
        json!([]),
    )
    .await;
    b.click("form.card button[type=submit]").await;
    b.wait_for(
        "return document.body.innerText.indexOf('Check your inbox') >= 0;",
        "the subscribe answer",
    )
    .await;
    assert!(
        b.text().await.contains(email),
        "the inbox page names the address"
    );
    b.assert_contrast("check your inbox page").await;
    assert_eq!(t.state_of(email).await.as_deref(), Some("pending"));
}

/// The preview choices waiting with pending subscriptions.
async fn pending_choices(t: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("SELECT paper_id, action FROM pending_choices")
        .fetch_all(t.app.store.pool())
        .await
        .unwrap()
}

/// *Not this*, then *Yes, like this* on the first preview paper: each
/// press updates the form's hidden choice and the pressed state, with no
/// page load (a marker set on the page survives).
async fn preview_choices_flow(b: &Browser) {
    b.js("window.steerMarker = 'same page';", json!([])).await;
    let first = "#preview-list li:first-child";
    b.click(&format!("{first} button[value^='not_for_me:']"))
        .await;
    b.wait_for(
        "var l = document.querySelectorAll('#choices input'); return l.length === 1 && l[0].name === 'not' && \
         document.querySelector('#preview-list li:first-child button[value^=\"not_for_me:\"]').getAttribute('aria-pressed') === 'true';",
        "the not-this choice in the form",
    )
    .await;
    b.click(&format!("{first} button[value^='more:']")).await;
    let state = b
        .wait_for(
            "var l = document.querySelectorAll('#choices input'); var li = document.querySelector('#preview-list li:first-child'); \
             return l.length === 1 && l[0].name === 'like' && l[0].value === li.dataset.id && { \
               more: li.querySelector('button[value^=\"more:\"]').getAttribute('aria-pressed'), \
               not: li.querySelector('button[value^=\"not_for_me:\"]').getAttribute('aria-pressed'), \
               marker: window.steerMarker };",
            "the like replacing the not-this",
        )
        .await;
    assert_eq!(state["more"], "true", "{state}");
    assert_eq!(state["not"], "false", "{state}");
    assert_eq!(state["marker"], "same page", "no reload: {state}");
}

/// Confirms from the mailed link; the confirmed page says when the next
/// digest comes, in the reader's zone and the browser's. Returns the
/// settings link it offers.
async fn confirm_flow(b: &Browser, t: &TestApp, email: &str) -> String {
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
    let next = b
        .wait_for(
            "var s = document.querySelector('.browser-time'); return s && s.textContent && s.parentNode.innerText;",
            "the next digest in the browser's time",
        )
        .await;
    assert_eq!(
        next.as_str().unwrap(),
        "Next digest: Friday 12 June, 18:30 New York time (Saturday 00:30 your browser\u{2019}s time)"
    );
    b.assert_contrast("confirmed page").await;
    let manage = b
        .js(
            "var a = document.querySelector('a[href*=\"/manage/\"]'); return a && a.href;",
            json!([]),
        )
        .await;
    manage.as_str().expect("a link to the settings").to_string()
}

/// The settings page: the live preview follows the edited profile, errors
/// sit beside their fields, saving says when the next digest comes, and
/// the controls line up.
async fn settings_flow(b: &Browser, t: &TestApp, email: &str, manage: &str) {
    // A saved paper, so the reading list (an h3 under its h2) shows.
    let addr = paperboy::domain::EmailAddress::parse(email).unwrap();
    let sub = t
        .app
        .store
        .subscriber_by_email(&addr)
        .await
        .unwrap()
        .unwrap();
    let fixture = {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/hf_daily_papers_2026-06-12.json"
        ))
        .unwrap();
        paperboy::sources::parse_hf(&bytes, None).unwrap()
    };
    t.app
        .store
        .record_feedback(
            sub.id,
            &fixture[1].id,
            paperboy::domain::FeedbackAction::Save,
            t.app.now(),
        )
        .await
        .unwrap();
    // Someone with a paper in the fixture, to follow.
    let followed = fixture[0].authors[0].clone();

    // Edit settings: the preview follows the edited topics; save.
    b.goto(manage).await;
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
    // *Not this* on a preview paper: ordinary feedback, recorded with no
    // page load, the paper marked in place.
    let judged = t.app.store.feedback_of(sub.id).await.unwrap().len();
    b.js("window.steerMarker = 'settings';", json!([])).await;
    b.click("#preview-list li:first-child button[value='not_for_me']")
        .await;
    let noted = b
        .wait_for(
            "var n = document.querySelector('#preview-list .noted'); return n && window.steerMarker === 'settings' && n.textContent;",
            "the not-this noted in place",
        )
        .await;
    assert_eq!(noted, "Noted: papers like this one will rank lower.");
    let fb = t.app.store.feedback_of(sub.id).await.unwrap();
    assert_eq!(fb.len(), judged + 1);
    assert!(fb
        .iter()
        .any(|e| e.action == paperboy::domain::FeedbackAction::NotForMe));
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
    b.type_into("#send_time", "19:45").await;
    b.click("form.card button[type=submit]").await;
    b.wait_for(
        "return document.body.innerText.indexOf('Your settings are saved') >= 0;",
        "the saved notice",
    )
    .await;
    // The notice says when the next digest comes, in both zones.
    let notice = b
        .wait_for(
            "var s = document.querySelector('.notice .browser-time'); return s && s.textContent && s.parentNode.innerText;",
            "the next digest in the saved notice",
        )
        .await;
    assert_eq!(
        notice.as_str().unwrap(),
        "Your settings are saved. Next digest: Friday 12 June, 19:45 New York time (Saturday 01:45 your browser\u{2019}s time)"
    );
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
    // Reached by a redirect: a reload asks again, posting nothing.
    let path = b.js("return location.pathname;", json!([])).await;
    assert!(path.as_str().unwrap().ends_with("/delete"), "{path}");
    b.assert_contrast("delete confirmation").await;
    b.click("main form.actions a").await;
    b.wait_for(
        "return document.body.innerText.indexOf('Your digest settings') >= 0;",
        "the settings page after cancelling",
    )
    .await;
    assert_eq!(t.state_of(email).await.as_deref(), Some("active"));

    // The controls line up: the time zone beside "Send at", the
    // Unsubscribe link beside the Pause button; "Saved papers" reads as a
    // heading under "Your reading list", smaller.
    b.viewport(1280).await;
    let (time, zone) = (b.rect("#send_time").await, b.rect("#time_zone").await);
    assert!(apart(&time, &zone, "top") <= 1.0, "{time} vs {zone}");
    assert!(apart(&time, &zone, "mid") <= 1.0, "{time} vs {zone}");
    let pause = b.rect("form input[value=pause] + button").await;
    let leave = b.rect("a[href*=\"/unsubscribe/\"]").await;
    assert!(apart(&pause, &leave, "mid") <= 2.0, "{pause} vs {leave}");
    let sizes = b
        .js(
            "var px = function (s) { return parseFloat(getComputedStyle(document.querySelector(s)).fontSize); }; \
             return [px('h2'), px('h3')];",
            json!([]),
        )
        .await;
    assert!(sizes[1].as_f64() < sizes[0].as_f64(), "h2, h3: {sizes}");
    b.viewport(390).await;
}

/// Words (outside links) that the layout broke across two lines.
const BROKEN_WORDS_JS: &str = r#"
var broken = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT), n;
while ((n = walker.nextNode())) {
  if (n.parentElement.closest('a')) continue;
  var re = /\S+/g, m;
  while ((m = re.exec(n.textContent))) {
    var r = document.createRange();
    r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
    var lines = {};
    Array.prototype.forEach.call(r.getClientRects(), function (c) { if (c.width > 0) lines[Math.round(c.top)] = 1; });
    if (Object.keys(lines).length > 1) broken.push(m[0]);
  }
}
return broken;
"#;

/// The first text a reader sees: the first text node that is laid out,
/// visible and not transparent.
const FIRST_VISIBLE_TEXT_JS: &str = r#"
var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT), n;
while ((n = walker.nextNode())) {
  if (!n.textContent.trim()) continue;
  var r = document.createRange(); r.selectNodeContents(n);
  var rects = r.getClientRects(), st = getComputedStyle(n.parentElement);
  var shown = Array.prototype.some.call(rects, function (c) { return c.width > 1 && c.height > 1; });
  if (shown && st.visibility !== 'hidden' && parseFloat(st.opacity) > 0) return n.textContent.trim();
}
return null;
"#;

/// Each feedback link's box.
const FEEDBACK_TARGETS_JS: &str = r#"
return [].filter.call(document.querySelectorAll('a'), function (a) { return a.href.indexOf('/feedback/') >= 0; })
  .map(function (a) { var r = a.getBoundingClientRect(); return { text: a.textContent, x: r.left, y: r.top, w: r.width, h: r.height }; });
"#;

/// The HTML part of a received mail.
fn html_part(m: &crate::support::Received) -> String {
    mail_parser::MessageParser::default()
        .parse(&m.data)
        .expect("parseable mail")
        .body_html(0)
        .expect("an HTML part")
        .into_owned()
}

impl Browser {
    /// Screenshots of a mail at both widths (mails declare a light scheme
    /// only; the dark shots show that it holds).
    async fn mail_shots(&self, name: &str) {
        for scheme in ["light", "dark"] {
            self.color_scheme(scheme).await;
            for width in [1280, 390] {
                self.viewport(width).await;
                self.screenshot(name, width, scheme).await;
            }
        }
        self.color_scheme("light").await;
    }

    /// Shows a mail at 390 px and returns the words broken outside links.
    async fn broken_words(&self, html: &str) -> Value {
        self.viewport(390).await;
        self.show_html(html).await;
        self.js(BROKEN_WORDS_JS, json!([])).await
    }
}

#[tokio::test]
async fn mails_read_well_on_a_phone_in_a_real_browser() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-12T12:00:00Z")
        .unwrap()
        .to_utc();
    let (t, _clock) = TestApp::spawn_at(
        now,
        &[("PAPERBOY__SUBSCRIBE__PER_ADDRESS_MIN_INTERVAL_MINUTES", "0")],
    )
    .await;
    t.seed_hf_fixture().await;
    let email = "phone@example.org";
    let form = [
        ("email", email),
        ("topics", "video generation"),
        ("send_time", "08:00"),
        ("time_zone", "UTC"),
    ];

    // The confirmation mail: only its raw link may break, and it does
    // rather than widen the screen.
    t.subscribe(&form).await;
    let confirmation = html_part(&t.sink.wait_for(email, 1).await[0]);
    assert_eq!(b.broken_words(&confirmation).await, json!([]));
    let width = b
        .js("return document.documentElement.scrollWidth;", json!([]))
        .await;
    assert!(width.as_f64().unwrap() <= 390.0, "{width} px wide");
    b.mail_shots("confirmation mail").await;

    // The settings-link mail of an address already subscribed, likewise.
    let link = t.confirmation_link(email, 1).await;
    t.client.post(&link).send().await.unwrap();
    t.subscribe(&form).await;
    let settings_link = html_part(&t.sink.wait_for(email, 2).await[1]);
    assert!(settings_link.contains("/manage/"));
    assert_eq!(b.broken_words(&settings_link).await, json!([]));
    b.mail_shots("settings link mail").await;

    // A digest (its 08:00 UTC send time is within the catch-up hours).
    let picker = paperboy::digest::RankPicker::for_run(&t.app, now)
        .await
        .unwrap();
    let report = paperboy::digest::run(&t.app, &picker, now).await.unwrap();
    assert_eq!(report.counts.sent, 1, "{report:?}");
    let mail = &t.sink.wait_for(email, 3).await[2];
    let digest = html_part(mail);
    let text = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .expect("parseable mail")
        .body_text(0)
        .expect("a text part")
        .into_owned();
    b.viewport(390).await;
    b.show_html(&digest).await;
    // The first thing a reader sees is the preheader, the same line that
    // opens the text part: a summary in whole clauses, not a cut title.
    let first = b.js(FIRST_VISIBLE_TEXT_JS, json!([])).await;
    let preheader = text.lines().next().unwrap_or_default();
    assert_eq!(first, json!(preheader));
    assert!(
        !preheader.contains('…') && !preheader.is_empty(),
        "{preheader}"
    );
    // Feedback links are targets of at least 24 × 24 px (WCAG 2.5.8),
    // none over another.
    let targets = b.js(FEEDBACK_TARGETS_JS, json!([])).await;
    let targets = targets.as_array().unwrap();
    assert!(targets.len() >= 3, "{targets:?}");
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap();
    for (i, a) in targets.iter().enumerate() {
        assert!(num(a, "w") >= 24.0 && num(a, "h") >= 24.0, "too small: {a}");
        for z in &targets[i + 1..] {
            let apart_x = num(a, "x") + num(a, "w") <= num(z, "x") + 0.5
                || num(z, "x") + num(z, "w") <= num(a, "x") + 0.5;
            let apart_y = num(a, "y") + num(a, "h") <= num(z, "y") + 0.5
                || num(z, "y") + num(z, "h") <= num(a, "y") + 0.5;
            assert!(apart_x || apart_y, "overlap: {a} and {z}");
        }
    }
    assert_eq!(b.broken_words(&digest).await, json!([]));
    b.mail_shots("digest mail").await;
    t.stop().await;
}
