//! Turns view models into HTML pages and emails, from the Handlebars
//! templates in `templates/` (embedded at build time), each of which an
//! operator may replace by a file of the same name in `templates.dir`.
//!
//! Two registries, both strict: the HTML one keeps Handlebars' HTML
//! escaping, the text one escapes nothing so plain-text mail never shows
//! `&amp;`. A missing variable is a render error, never an empty string.
//! Templates never use triple-stash on untrusted data (`.ci/run`
//! greps for it), and every URL reaching a template is built in Rust.

use handlebars::Handlebars;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A rendering failure: a template bug or a view model missing a field.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name} failed to render: {source}")]
    Render {
        name: String,
        source: Box<handlebars::RenderError>,
    },
    #[error("template {name} does not compile: {source}")]
    Template {
        name: String,
        source: Box<handlebars::TemplateError>,
    },
    /// An operator's template (`templates.dir`) that cannot be used: the
    /// file, the line when known, and why.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Override {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
}

/// Subject, text part and HTML part of one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// (name, source) of every embedded page template.
const PAGES: &[(&str, &str)] = &[
    ("layout", include_str!("../../templates/pages/layout.hbs")),
    ("preview", include_str!("../../templates/pages/preview.hbs")),
    (
        "subscribe",
        include_str!("../../templates/pages/subscribe.hbs"),
    ),
    ("message", include_str!("../../templates/pages/message.hbs")),
    ("confirm", include_str!("../../templates/pages/confirm.hbs")),
    (
        "confirmed",
        include_str!("../../templates/pages/confirmed.hbs"),
    ),
    ("manage", include_str!("../../templates/pages/manage.hbs")),
    (
        "unsubscribe",
        include_str!("../../templates/pages/unsubscribe.hbs"),
    ),
    (
        "feedback",
        include_str!("../../templates/pages/feedback.hbs"),
    ),
    ("delete", include_str!("../../templates/pages/delete.hbs")),
    (
        "field_attrs",
        include_str!("../../templates/pages/field_attrs.hbs"),
    ),
    (
        "field_error",
        include_str!("../../templates/pages/field_error.hbs"),
    ),
    (
        "error_summary",
        include_str!("../../templates/pages/error_summary.hbs"),
    ),
    (
        "next_digest",
        include_str!("../../templates/pages/next_digest.hbs"),
    ),
    (
        "topic_list",
        include_str!("../../templates/pages/topic_list.hbs"),
    ),
    (
        "zone_options",
        include_str!("../../templates/pages/zone_options.hbs"),
    ),
];

/// Page templates used as partials (`{{> name}}`), registered under
/// their bare name as well.
const PARTIALS: &[&str] = &[
    "layout",
    "preview",
    "field_attrs",
    "field_error",
    "error_summary",
    "next_digest",
    "topic_list",
    "zone_options",
];

/// (name, subject, text, html) of every embedded email template.
const EMAILS: &[(&str, &str, &str, &str)] = &[
    (
        "confirm",
        include_str!("../../templates/email/confirm.subject.hbs"),
        include_str!("../../templates/email/confirm.txt.hbs"),
        include_str!("../../templates/email/confirm.html.hbs"),
    ),
    (
        "digest",
        include_str!("../../templates/email/digest.subject.hbs"),
        include_str!("../../templates/email/digest.txt.hbs"),
        include_str!("../../templates/email/digest.html.hbs"),
    ),
    (
        "manage_link",
        include_str!("../../templates/email/manage_link.subject.hbs"),
        include_str!("../../templates/email/manage_link.txt.hbs"),
        include_str!("../../templates/email/manage_link.html.hbs"),
    ),
];

/// Longest subject line paperboy emits, in characters.
pub const MAX_SUBJECT_CHARS: usize = 150;

/// Both registries, compiled once at start-up and shared read-only.
#[derive(Debug)]
pub struct Renderer {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
}

impl Renderer {
    /// Compiles every embedded template; fails on the first broken one.
    pub fn new() -> Result<Renderer, RenderError> {
        Renderer::build(&BTreeMap::new())
    }

    /// Compiles the embedded templates, each replaced by the file of the
    /// same relative name under `dir` when there is one
    /// (`pages/layout.hbs`, `email/digest.subject.hbs`, …). Fails, naming
    /// the file and line, on a file that overrides nothing, a template that
    /// does not compile, or a triple-stash (overrides are held to the
    /// same escaping rule as the embedded templates).
    pub fn with_overrides(dir: Option<&Path>) -> Result<Renderer, RenderError> {
        let overrides = match dir {
            Some(d) => load_overrides(d)?,
            None => BTreeMap::new(),
        };
        Renderer::build(&overrides)
    }

    fn build(overrides: &BTreeMap<String, Override>) -> Result<Renderer, RenderError> {
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        html.register_escape_fn(escape_html);
        let mut text = Handlebars::new();
        text.set_strict_mode(true);
        text.register_escape_fn(handlebars::no_escape);
        // An override's compile error names its file and line; an
        // embedded template's, its name (a bug in paperboy itself).
        let reg = |h: &mut Handlebars<'static>, name: String, file: String, embedded: &str| {
            let (src, from) = match overrides.get(&file) {
                Some(o) => (o.source.as_str(), Some(&o.path)),
                None => (embedded, None),
            };
            h.register_template_string(&name, src)
                .map_err(|e| match from {
                    Some(path) => RenderError::Override {
                        path: path.clone(),
                        line: e.pos().map(|(line, _)| line),
                        message: format!("does not compile: {}", e.reason()),
                    },
                    None => RenderError::Template {
                        name,
                        source: Box::new(e),
                    },
                })
        };
        for (name, src) in PAGES {
            let file = format!("pages/{name}.hbs");
            reg(&mut html, format!("page/{name}"), file.clone(), src)?;
            // Partials are also registered under their bare name.
            if PARTIALS.contains(name) {
                reg(&mut html, name.to_string(), file, src)?;
            }
        }
        for (name, subject, txt, htm) in EMAILS {
            let file = |part: &str| format!("email/{name}.{part}.hbs");
            reg(
                &mut text,
                format!("email/{name}.subject"),
                file("subject"),
                subject,
            )?;
            reg(&mut text, format!("email/{name}.txt"), file("txt"), txt)?;
            reg(&mut html, format!("email/{name}.html"), file("html"), htm)?;
        }
        Ok(Renderer { html, text })
    }

    /// Renders `templates/pages/{name}.hbs`.
    pub fn page(&self, name: &str, data: &impl Serialize) -> Result<String, RenderError> {
        let key = format!("page/{name}");
        self.html
            .render(&key, data)
            .map_err(|e| RenderError::Render {
                name: key,
                source: Box::new(e),
            })
    }

    /// Renders `templates/email/{name}.{subject,txt,html}.hbs`. The
    /// subject is rendered as text, then sanitised for use in a header.
    pub fn email(&self, name: &str, data: &impl Serialize) -> Result<RenderedEmail, RenderError> {
        // One conversion to a JSON value for all three templates, not one
        // each: on a large digest it costs as much as a template.
        let ctx = handlebars::Context::wraps(data).map_err(|e| RenderError::Render {
            name: format!("email/{name}"),
            source: Box::new(e),
        })?;
        let render = |h: &Handlebars<'static>, key: String| {
            h.render_with_context(&key, &ctx)
                .map_err(|e| RenderError::Render {
                    name: key,
                    source: Box::new(e),
                })
        };
        Ok(RenderedEmail {
            subject: sanitize_header_text(
                &render(&self.text, format!("email/{name}.subject"))?,
                MAX_SUBJECT_CHARS,
            ),
            text: render(&self.text, format!("email/{name}.txt"))?,
            html: render(&self.html, format!("email/{name}.html"))?,
        })
    }
}

/// One operator template read from `templates.dir`.
struct Override {
    path: PathBuf,
    source: String,
}

/// Every template name an operator can override, as a path relative to
/// `templates.dir`.
pub fn overridable() -> Vec<String> {
    let pages = PAGES.iter().map(|(n, _)| format!("pages/{n}.hbs"));
    let emails = EMAILS
        .iter()
        .flat_map(|(n, ..)| ["subject", "txt", "html"].map(|part| format!("email/{n}.{part}.hbs")));
    pages.chain(emails).collect()
}

/// Reads the `*.hbs` files of `dir/pages` and `dir/email`, keyed by their
/// relative name; files without the `.hbs` extension are left alone.
fn load_overrides(dir: &Path) -> Result<BTreeMap<String, Override>, RenderError> {
    let fail = |path: &Path, message: String| RenderError::Override {
        path: path.to_path_buf(),
        line: None,
        message,
    };
    if !dir.is_dir() {
        return Err(fail(dir, "templates.dir is not a directory".into()));
    }
    let known = overridable();
    let mut out = BTreeMap::new();
    for sub in ["pages", "email"] {
        let folder = dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.map_err(|e| fail(&folder, e.to_string()))?.path();
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            if !file.ends_with(".hbs") {
                continue;
            }
            let key = format!("{sub}/{file}");
            if !known.contains(&key) {
                return Err(fail(
                    &path,
                    format!("overrides no template; the names are {}", known.join(", ")),
                ));
            }
            let source = std::fs::read_to_string(&path).map_err(|e| fail(&path, e.to_string()))?;
            if let Some(line) = triple_stash_line(&source) {
                return Err(RenderError::Override {
                    path,
                    line: Some(line),
                    message: "`{{{` turns HTML escaping off; paperboy templates may not use it"
                        .into(),
                });
            }
            out.insert(key, Override { path, source });
        }
    }
    Ok(out)
}

/// The 1-based line of the first `{{{` (triple-stash or raw block), the
/// same rule `.ci/run` applies to the embedded templates.
fn triple_stash_line(source: &str) -> Option<usize> {
    source
        .lines()
        .position(|l| l.contains("{{{"))
        .map(|i| i + 1)
}

/// Handlebars' HTML escaping, the same seven characters to the same
/// entities, but copying the runs between them whole instead of pushing
/// every character: a digest escapes ~15 KB of text per subscriber.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'&' => "&amp;",
            b'\'' => "&#x27;",
            b'`' => "&#x60;",
            b'=' => "&#x3D;",
            _ => continue,
        };
        // `i` is a char boundary: these are ASCII bytes.
        out.push_str(&s[plain..i]);
        out.push_str(entity);
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out
}

/// Makes text safe for a header: control characters (CR and LF
/// included) become spaces, whitespace runs collapse, and the result is
/// cut at `max_chars` on a character boundary with an ellipsis.
pub fn sanitize_header_text(s: &str, max_chars: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let collapsed = crate::domain::normalize_whitespace(&cleaned);
    if collapsed.chars().count() <= max_chars {
        return collapsed;
    }
    let mut out: String = collapsed
        .chars()
        .take(max_chars.saturating_sub(1))
        .collect();
    out = out.trim_end().to_string();
    out.push('…');
    out
}

/// Returns `url` only when it is an absolute `https` (or, when
/// `allow_http`, `http`) URL with a host, re-serialised by `url::Url`;
/// anything else (`javascript:`, `data:`, relative, garbage) is dropped
/// so it can never become an `href`.
pub fn safe_link(url: &str, allow_http: bool) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    let scheme_ok = parsed.scheme() == "https" || (allow_http && parsed.scheme() == "http");
    (scheme_ok && parsed.host_str().is_some()).then(|| parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_embedded_template_compiles() {
        Renderer::new().unwrap();
    }

    proptest::proptest! {
        #[test]
        fn html_escaping_is_exactly_handlebars_own(s in "(?s)([<>\"&'`=aé€ \n]|.){0,200}") {
            proptest::prop_assert_eq!(escape_html(&s), handlebars::html_escape(&s));
        }
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let r = Renderer::new().unwrap();
        let evil = "<script>alert(1)</script> & \"q\"";
        let mail = r
            .email(
                "confirm",
                &json!({
                    "preheader": evil, "confirm_url": "https://example.org/confirm/x",
                    "ttl_hours": 48, "topics": [evil], "home_url": "https://example.org/",
                }),
            )
            .unwrap();
        assert!(mail
            .html
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"));
        assert!(!mail.html.contains("<script>"));
        assert!(mail.text.contains(evil));
    }

    #[test]
    fn a_missing_variable_is_a_render_error() {
        let r = Renderer::new().unwrap();
        let err = r
            .email("confirm", &json!({ "preheader": "x" }))
            .unwrap_err();
        assert!(err.to_string().contains("email/confirm"), "{err}");
    }

    /// A `templates.dir` holding `files` (relative name, content).
    fn operator_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        dir
    }

    #[test]
    fn an_operator_template_replaces_the_embedded_one_by_name() {
        let dir = operator_dir(&[
            ("email/confirm.subject.hbs", "Welcome to Acme Papers"),
            (
                "pages/layout.hbs",
                "<main class=\"acme\">{{> @partial-block }}</main>",
            ),
            ("pages/notes.txt", "not a template: ignored"),
        ]);
        let r = Renderer::with_overrides(Some(dir.path())).unwrap();
        let mail = r
            .email(
                "confirm",
                &json!({
                    "preheader": "p", "confirm_url": "https://example.org/confirm/x",
                    "ttl_hours": 48, "topics": ["RAG"], "home_url": "https://example.org/",
                }),
            )
            .unwrap();
        assert_eq!(mail.subject, "Welcome to Acme Papers");
        let page = r
            .page(
                "message",
                &json!({
                    "title": "t", "home_url": "/", "noindex": false, "heading": "Hello",
                    "paragraphs": [], "link_url": null, "link_text": null,
                    "links": [], "next_digest": null,
                }),
            )
            .unwrap();
        assert!(page.starts_with("<main class=\"acme\">"), "{page}");
        assert!(page.contains("<h1>Hello</h1>"));
    }

    #[test]
    fn a_triple_stash_in_an_override_is_refused_with_its_file_and_line() {
        let dir = operator_dir(&[(
            "pages/message.hbs",
            "{{#> layout}}\n<h1>{{heading}}</h1>\n{{{link_text}}}\n{{/layout}}",
        )]);
        let err = Renderer::with_overrides(Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pages/message.hbs:3:"), "{err}");
        assert!(err.contains("turns HTML escaping off"), "{err}");
    }

    #[test]
    fn a_broken_or_unknown_override_names_the_file_and_line() {
        let dir = operator_dir(&[("pages/confirm.hbs", "<p>ok</p>\n{{#if x}}\nno end")]);
        let err = Renderer::with_overrides(Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pages/confirm.hbs:"), "{err}");
        assert!(err.contains("does not compile"), "{err}");
        let dir = operator_dir(&[("email/digest.hbs", "x")]);
        let err = Renderer::with_overrides(Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("email/digest.hbs: overrides no template"),
            "{err}"
        );
        assert!(err.contains("email/digest.subject.hbs"), "{err}");
        let missing = Renderer::with_overrides(Some(Path::new("/nonexistent/templates")));
        assert!(missing.unwrap_err().to_string().contains("not a directory"));
    }

    #[test]
    fn header_text_loses_line_breaks_and_is_capped() {
        assert_eq!(
            sanitize_header_text("Hello\r\nBcc: evil@example.org", 100),
            "Hello Bcc: evil@example.org"
        );
        let long = "é".repeat(300);
        let s = sanitize_header_text(&long, 10);
        assert_eq!(s.chars().count(), 10);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn only_absolute_http_links_survive() {
        assert_eq!(
            safe_link("https://arxiv.org/abs/1", false).as_deref(),
            Some("https://arxiv.org/abs/1")
        );
        assert_eq!(safe_link("http://example.org", false), None);
        assert!(safe_link("http://example.org", true).is_some());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "/relative",
            "",
            "https://",
        ] {
            assert_eq!(safe_link(bad, true), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn sanitized_header_text_never_contains_controls(s in "\\PC{0,300}|[\\r\\n\\t\\x00-\\x1f]{0,20}") {
            let out = sanitize_header_text(&s, MAX_SUBJECT_CHARS);
            proptest::prop_assert!(!out.chars().any(|c| c.is_control()));
            proptest::prop_assert!(out.chars().count() <= MAX_SUBJECT_CHARS);
        }
    }
}
