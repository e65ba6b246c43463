//! MIME body encoding for the text and HTML parts (RFC 2045 §6.7).
//!
//! lettre's own `Body::new` scans a part to choose its encoding, converts
//! line endings in a second pass and quoted-printable-encodes it character
//! by character in a third; on a ~20 KB digest that was a tenth of the
//! cost of a whole delivery. This does the same job in one pass over the
//! bytes with a lookup table, and hands lettre the result as a
//! pre-encoded body.
//!
//! Contract of [`text_body`]: line endings become CRLF; a part that is
//! ASCII with every line shorter than 76 bytes is sent as `7bit`
//! unchanged, anything else as quoted-printable whose output lines are at
//! most 76 bytes, never split inside an `=XX` escape, with no whitespace
//! left unencoded at a line end. Decoding gives back the input with CRLF
//! line endings.

use lettre::message::header::ContentTransferEncoding;
use lettre::message::Body;

/// Longest encoded line, without its CRLF (RFC 2045).
const MAX_LINE: usize = 76;

/// Bytes that quoted-printable must escape anywhere in a line: everything
/// but printable ASCII, space and tab, plus `=` itself.
const ESCAPE: [bool; 256] = {
    let mut t = [true; 256];
    let mut b = b' ';
    while b <= b'~' {
        t[b as usize] = false;
        b += 1;
    }
    t[b'\t' as usize] = false;
    t[b'=' as usize] = true;
    t
};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The part's text as a ready-to-send body (see the module contract).
pub fn text_body(text: &str) -> Body {
    let bytes = text.as_bytes();
    // Printable ASCII and tabs only (no bare CR, no other controls), in
    // short lines.
    // `is_ascii` first: a word-at-a-time scan that settles most digests
    // (an ellipsis or a middle dot is enough) before the per-line pass.
    let seven_bit = bytes.is_ascii()
        && lines(bytes).all(|line| {
            line.len() < MAX_LINE && line.iter().all(|&b| b == b'=' || !ESCAPE[b as usize])
        });
    if seven_bit {
        Body::dangerous_pre_encoded(crlf(bytes), ContentTransferEncoding::SevenBit)
    } else {
        Body::dangerous_pre_encoded(
            quoted_printable(bytes),
            ContentTransferEncoding::QuotedPrintable,
        )
    }
}

/// The lines of `input`, without their LF or CRLF endings. A CR not
/// followed by LF stays in its line, as data.
fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = input.split(|&b| b == b'\n').peekable();
    std::iter::from_fn(move || {
        let line = rest.next()?;
        Some(match rest.peek() {
            Some(_) => line.strip_suffix(b"\r").unwrap_or(line),
            None => line,
        })
    })
}

/// `input` with every line ending (LF or CRLF) as CRLF.
fn crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    for (i, line) in lines(input).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    }
    out
}

/// Quoted-printable in text mode: LF or CRLF are hard line breaks (CRLF
/// out), a lone CR is data (`=0D`).
pub fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 8);
    for (i, line) in lines(input).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        encode_line(line, &mut out);
    }
    out
}

/// One input line (no line ending), soft-wrapped to [`MAX_LINE`]: at most
/// `MAX_LINE - 1` characters before a soft break's `=`; the line's last
/// character may be the `MAX_LINE`th.
///
/// Copies runs of bytes that need no escape whole (most of a digest),
/// rather than byte by byte.
fn encode_line(line: &[u8], out: &mut Vec<u8>) {
    let len = line.len();
    // Whitespace is escaped only where it would end the line.
    let plain_end = match line.last() {
        Some(b' ' | b'\t') => len - 1,
        _ => len,
    };
    let mut width = 0;
    let mut i = 0;
    while i < len {
        let mut run_end = i;
        while run_end < plain_end && !ESCAPE[line[run_end] as usize] {
            run_end += 1;
        }
        while i < run_end {
            let remaining = run_end - i;
            if run_end == len && width + remaining <= MAX_LINE {
                out.extend_from_slice(&line[i..run_end]);
                width += remaining;
                i = run_end;
                break;
            }
            let take = remaining.min(MAX_LINE - 1 - width);
            if take == 0 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
                continue;
            }
            out.extend_from_slice(&line[i..i + take]);
            width += take;
            i += take;
        }
        if i == len {
            break;
        }
        let b = line[i];
        let room = if i + 1 == len { MAX_LINE } else { MAX_LINE - 1 };
        if width + 3 > room {
            out.extend_from_slice(b"=\r\n");
            width = 0;
        }
        out.extend_from_slice(&[b'=', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        width += 3;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(encoded: &[u8]) -> Vec<u8> {
        quoted_printable::decode(encoded, quoted_printable::ParseMode::Strict)
            .expect("valid quoted-printable")
    }

    fn check_lines(encoded: &[u8]) {
        for line in encoded.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(line.len() <= MAX_LINE, "line of {}: {line:?}", line.len());
            assert!(
                !line.ends_with(b" ") && !line.ends_with(b"\t"),
                "whitespace at a line end: {line:?}"
            );
            assert!(line
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)));
            assert!(!line.contains(&b'\r'), "bare CR in {line:?}");
        }
    }

    #[test]
    fn short_ascii_lines_stay_seven_bit_with_crlf() {
        let body = text_body("Hello\nworld\r\n");
        assert_eq!(body.encoding(), ContentTransferEncoding::SevenBit);
        assert_eq!(body.as_ref(), b"Hello\r\nworld\r\n");
    }

    #[test]
    fn non_ascii_or_long_lines_are_quoted_printable() {
        let body = text_body("Grüße — «ok»\n");
        assert_eq!(body.encoding(), ContentTransferEncoding::QuotedPrintable);
        assert_eq!(
            body.as_ref(),
            b"Gr=C3=BC=C3=9Fe =E2=80=94 =C2=ABok=C2=BB\r\n"
        );
        let long = "x".repeat(200);
        let body = text_body(&long);
        assert_eq!(body.encoding(), ContentTransferEncoding::QuotedPrintable);
        check_lines(body.as_ref());
        assert_eq!(decode(body.as_ref()), long.as_bytes());
    }

    #[test]
    fn equals_signs_trailing_whitespace_and_lone_cr_are_escaped() {
        assert_eq!(quoted_printable(b"a=b \n\t"), b"a=3Db=20\r\n=09");
        assert_eq!(quoted_printable(b"a\rb"), b"a=0Db");
        assert_eq!(quoted_printable(b"a\r"), b"a=0D");
        assert_eq!(
            text_body("a\rb\n").encoding(),
            ContentTransferEncoding::QuotedPrintable
        );
        assert_eq!(quoted_printable(b"a \tb"), b"a \tb");
    }

    #[test]
    fn a_soft_break_never_splits_an_escape() {
        for pad in 70..80 {
            let s = format!("{}é{}", "a".repeat(pad), "b".repeat(pad));
            let enc = quoted_printable(s.as_bytes());
            check_lines(&enc);
            assert_eq!(decode(&enc), s.as_bytes());
        }
    }

    #[test]
    fn a_real_mime_parser_reads_back_the_text() {
        let text = "Über 9000 — “quotes” = fine\n".repeat(20);
        let body = text_body(&text);
        let raw = [
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".as_slice(),
            body.as_ref(),
        ]
        .concat();
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.body_text(0).unwrap().replace("\r\n", "\n"), text);
    }

    proptest! {
        #[test]
        fn any_text_round_trips_within_the_line_limit(s in "(?s)[ -~\t\r\né€😀=]{0,400}") {
            let body = text_body(&s);
            // LF and CRLF line endings become CRLF; a lone CR is data.
            let expected = s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes();
            match body.encoding() {
                ContentTransferEncoding::SevenBit => {
                    prop_assert_eq!(body.as_ref(), &expected[..]);
                }
                _ => {
                    check_lines(body.as_ref());
                    prop_assert_eq!(decode(body.as_ref()), expected);
                }
            }
        }
    }
}
