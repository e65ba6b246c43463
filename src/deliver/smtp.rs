//! A pool of SMTP connections whose sockets have `TCP_NODELAY` set.
//!
//! lettre's own pool cannot set it, and lettre writes a message and its
//! terminating `<CRLF>.<CRLF>` in two writes. With Nagle's algorithm on,
//! the second, tiny write waits until the relay acknowledges the first,
//! and the relay delays that ACK (40 ms on Linux) because it has nothing
//! to say before the dot arrives: about 45 ms per message per connection,
//! so 4 connections could never exceed ~90 messages a second. lettre
//! still speaks the protocol (EHLO, STARTTLS, AUTH, each command); this
//! module dot-stuffs the data itself ([`DotStuffed`]), opens the sockets,
//! keeps the idle
//! connections, and orders one message's commands itself (lettre's
//! `send` in two halves), so the digest engine's "send started" mark can
//! commit while MAIL, RCPT and DATA are under way (`send_when`).
//!
//! Implicit TLS (port 465) needs a TLS stream before the greeting, which
//! lettre only builds on its own socket, so those connections are opened
//! by lettre and keep Nagle's algorithm.

use super::DeliverError;
use crate::config::SmtpTls;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An idle connection is dropped instead of reused after this long: relays
/// close idle sessions, typically after a minute or more.
const MAX_IDLE: Duration = Duration::from_secs(50);

/// A connection that finished a message this recently is reused without
/// a NOOP first: relays close sessions after idling for tens of seconds,
/// and one that closed anyway costs a retry on a checked connection
/// (`send_when`). During a run this saves a round trip per message.
const UNCHECKED_REUSE: Duration = Duration::from_secs(2);

/// Whether [`SmtpPool::checkout`] may skip the NOOP of a recent connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    IfIdle,
    Always,
}

pub struct SmtpPool {
    host: String,
    port: u16,
    tls: SmtpTls,
    tls_parameters: Option<TlsParameters>,
    hello: ClientId,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
    max_idle_connections: usize,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl SmtpPool {
    pub fn new(
        host: &str,
        port: u16,
        tls: SmtpTls,
        credentials: Option<Credentials>,
        connect_timeout: Duration,
        max_idle_connections: usize,
    ) -> anyhow::Result<SmtpPool> {
        let tls_parameters = match tls {
            SmtpTls::None => None,
            SmtpTls::Implicit | SmtpTls::StartTls => Some(TlsParameters::new(host.to_string())?),
        };
        Ok(SmtpPool {
            host: host.to_string(),
            port,
            tls,
            tls_parameters,
            hello: ClientId::default(),
            credentials,
            connect_timeout,
            max_idle_connections,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends one message on an idle connection (checked with NOOP, as
    /// lettre's pool does, unless it finished a message moments ago) or a
    /// new one, and keeps the connection for the next message unless it
    /// broke or enough are idle already.
    pub async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<(), DeliverError> {
        match self.send_when(envelope, bytes, async { Ok(()) }).await {
            Ok(r) => r,
            Err(e) => unreachable!("an always-ready gate failed: {e}"),
        }
    }

    /// Sends one message once `ready` has resolved: the connection
    /// checkout and MAIL, RCPT and DATA run while `ready` is pending, and
    /// only the message data, whose final dot is the point after which
    /// the relay may have taken the message, waits for it. The digest
    /// engine passes its durable "send started" mark as `ready`, so
    /// the mark's commit overlaps three round trips instead of preceding
    /// them. If `ready` fails, the session is aborted before the data
    /// (the relay discards it) and its error is returned as the outer
    /// error; the inner result is the SMTP outcome.
    ///
    /// lettre's async client bounds only the connect, so a relay that
    /// accepts a connection and then stalls would hang the send forever:
    /// the commands before the data and the data are each bounded by
    /// `send_timeout()`. A stall before the data is a network error (the
    /// relay cannot have the message); a stall during the data is a
    /// [`DeliverError::Timeout`], whose outcome is unknown (the relay may
    /// have taken the message).
    pub async fn send_when<G>(
        &self,
        envelope: &Envelope,
        bytes: &[u8],
        ready: G,
    ) -> anyhow::Result<Result<(), DeliverError>>
    where
        G: std::future::Future<Output = anyhow::Result<()>>,
    {
        let prelude = tokio::time::timeout(self.send_timeout(), self.open_message(envelope, bytes));
        let (prelude, ready) = tokio::join!(prelude, ready);
        let mut conn = match (prelude, ready) {
            // Dropped, not aborted: after DATA's 354 the relay reads
            // everything as message data, so lettre's QUIT would wait for
            // a reply that never comes. Closing the connection before the
            // final dot makes the relay discard the message.
            (_, Err(e)) => return Err(e),
            (Ok(Ok(conn)), Ok(())) => conn,
            (Ok(Err(e)), Ok(())) => return Ok(Err(e)),
            (Err(_), Ok(())) => {
                return Ok(Err(DeliverError::Network(format!(
                    "no reply from the SMTP relay within {} s before the message data",
                    self.send_timeout().as_secs()
                ))))
            }
        };
        let data = tokio::time::timeout(self.send_timeout(), message_data(&mut conn, bytes)).await;
        Ok(match data {
            Ok(Ok(_)) => {
                self.checkin(conn).await;
                Ok(())
            }
            Ok(Err(e)) => {
                conn.abort().await;
                Err(DeliverError::from_lettre(e))
            }
            Err(_) => Err(DeliverError::Timeout(format!(
                "no complete reply from the SMTP relay within {} s",
                self.send_timeout().as_secs()
            ))),
        })
    }

    /// The bound on each half of a send (connect and commands; data):
    /// twice the configured `mail.smtp.timeout_secs`.
    pub fn send_timeout(&self) -> Duration {
        self.connect_timeout * 2
    }

    /// Opens and closes one connection: is the relay reachable?
    pub async fn test_connection(&self) -> Result<(), DeliverError> {
        let mut conn = self.connect().await?;
        conn.quit().await.map_err(DeliverError::from_lettre)?;
        Ok(())
    }

    /// Closes every idle connection.
    pub async fn shutdown(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for (mut conn, _) in idle {
            conn.abort().await;
        }
    }

    /// A connection on which MAIL, RCPT and DATA were accepted, ready for
    /// the message data. A connection reused without a NOOP may have been
    /// closed by the relay meanwhile: that costs one more try on a
    /// checked one, never the message.
    async fn open_message(
        &self,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Result<AsyncSmtpConnection, DeliverError> {
        let mut check = Check::IfIdle;
        loop {
            let (mut conn, checked) = self.checkout(check).await?;
            match envelope_commands(&mut conn, envelope, bytes).await {
                Ok(()) => return Ok(conn),
                // A checked connection never comes back here: one retry.
                Err(e) if !checked && e.connection_gone() => check = Check::Always,
                Err(e) => {
                    conn.abort().await;
                    return Err(e);
                }
            }
        }
    }

    /// An idle connection or a new one, and whether it is known to be
    /// alive (new, or answered a NOOP). With [`Check::IfIdle`], one that
    /// finished a message within [`UNCHECKED_REUSE`] is handed out
    /// without the NOOP round trip, as MTAs reuse cached sessions.
    async fn checkout(&self, check: Check) -> Result<(AsyncSmtpConnection, bool), DeliverError> {
        loop {
            let next = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((mut conn, since)) = next else {
                return Ok((self.connect().await?, true));
            };
            let idle = since.elapsed();
            if check == Check::IfIdle && idle < UNCHECKED_REUSE {
                return Ok((conn, false));
            }
            if idle < MAX_IDLE && conn.test_connected().await {
                return Ok((conn, true));
            }
            conn.abort().await;
        }
    }

    async fn checkin(&self, mut conn: AsyncSmtpConnection) {
        if !conn.has_broken() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.max_idle_connections {
                idle.push((conn, Instant::now()));
                return;
            }
        }
        conn.abort().await;
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, DeliverError> {
        let timeout = |e| DeliverError::Network(format!("connecting to the relay: {e}"));
        let mut conn = if let SmtpTls::Implicit = self.tls {
            AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.connect_timeout),
                &self.hello,
                self.tls_parameters.clone(),
                None,
            )
            .await
            .map_err(DeliverError::from_lettre)?
        } else {
            let tcp = tokio::time::timeout(
                self.connect_timeout,
                tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
            )
            .await
            .map_err(|_| timeout("timed out".to_string()))?
            .map_err(|e| timeout(e.to_string()))?;
            tcp.set_nodelay(true).map_err(|e| timeout(e.to_string()))?;
            let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                .await
                .map_err(DeliverError::from_lettre)?;
            if let (SmtpTls::StartTls, Some(params)) = (self.tls, &self.tls_parameters) {
                // lettre refuses when the relay does not offer STARTTLS:
                // never falls back to plain text.
                conn.starttls(params.clone(), &self.hello)
                    .await
                    .map_err(DeliverError::from_lettre)?;
            }
            conn
        };
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(DeliverError::from_lettre)?;
        }
        Ok(conn)
    }
}

/// MAIL, RCPT and DATA for one message, as lettre's `send` does before
/// the data: SMTPUTF8 for non-ASCII addresses and 8BITMIME for non-ASCII
/// content, each refused when the relay does not offer it.
async fn envelope_commands(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    bytes: &[u8],
) -> Result<(), DeliverError> {
    let mut options = Vec::new();
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii_address {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(DeliverError::Network(
                "the address is not ASCII and the relay does not offer SMTPUTF8".into(),
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(DeliverError::Network(
                "the message is not ASCII and the relay does not offer 8BITMIME".into(),
            ));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let lettre = DeliverError::from_lettre;
    conn.command(Mail::new(envelope.from().cloned(), options))
        .await
        .map_err(lettre)?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![]))
            .await
            .map_err(lettre)?;
    }
    conn.command(Data).await.map_err(lettre)?;
    Ok(())
}

/// The message data after DATA's 354, and the relay's reply to its final
/// dot. lettre's `message` dot-stuffs a byte at a time into a growing
/// buffer (a sixth of the send path's CPU in a digest run) and writes the
/// terminating dot separately; [`DotStuffed`] copies the runs between
/// line starts whole and goes out in one write, through lettre's
/// `command` (write, then read one reply). Data that is not UTF-8 (never
/// a message this crate composes) goes through lettre's own path.
async fn message_data(
    conn: &mut AsyncSmtpConnection,
    bytes: &[u8],
) -> Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => conn.command(DotStuffed(text)).await,
        Err(_) => conn.message(bytes).await,
    }
}

/// SMTP data as sent on the wire (RFC 5321 §4.5.2): a `.` is doubled
/// where it starts the data or follows a CRLF, as lettre's codec does, and
/// `<CRLF>.<CRLF>` ends it, its first CRLF being the message's own last
/// one when it has one (lettre always adds one, so the relay received an
/// empty line the message did not have).
struct DotStuffed<'a>(&'a str);

impl std::fmt::Display for DotStuffed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0;
        let mut from = 0;
        if text.starts_with('.') {
            f.write_str(".")?;
        }
        for at in memchr::memmem::find_iter(text.as_bytes(), b"\r\n.") {
            // Up to and including the CRLF, then the extra dot; the
            // line's own dot starts the next run.
            f.write_str(&text[from..at + 2])?;
            f.write_str(".")?;
            from = at + 2;
        }
        f.write_str(&text[from..])?;
        if text.ends_with("\r\n") {
            f.write_str(".\r\n")
        } else {
            f.write_str("\r\n.\r\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DotStuffed;

    /// lettre's codec (`ClientCodec::encode`, private to lettre), byte for
    /// byte, then the terminator, sharing the message's last CRLF.
    fn lettre_codec(data: &[u8]) -> Vec<u8> {
        #[derive(Clone, Copy)]
        enum At {
            Middle,
            Cr,
            LineStart,
        }
        let mut at = At::LineStart;
        let mut out = Vec::new();
        for &b in data {
            out.push(b);
            at = match (b, at) {
                (b'\r', _) => At::Cr,
                (b'\n', At::Cr) => At::LineStart,
                (b'.', At::LineStart) => {
                    out.push(b'.');
                    At::Middle
                }
                (_, At::Cr | At::LineStart) => At::Middle,
                (_, At::Middle) => At::Middle,
            };
        }
        if data.ends_with(b"\r\n") {
            out.extend_from_slice(b".\r\n");
        } else {
            out.extend_from_slice(b"\r\n.\r\n");
        }
        out
    }

    #[test]
    fn dot_stuffing_matches_lettre_on_every_short_input() {
        let alphabet = [".", "\r", "\n", "a", "é"];
        let mut inputs = vec![String::new()];
        for _ in 0..6 {
            let longer: Vec<String> = inputs
                .iter()
                .filter(|s| s.chars().count() == inputs.last().unwrap().chars().count())
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            inputs.extend(longer);
        }
        assert_eq!(inputs.len(), (0..=6).map(|n| 5usize.pow(n)).sum::<usize>());
        for input in &inputs {
            assert_eq!(
                DotStuffed(input).to_string().into_bytes(),
                lettre_codec(input.as_bytes()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_message_of_dotted_lines_is_stuffed_once_per_line_start() {
        let message = ".top\r\n..two\r\nmid.dle\r\n.\r\nend\r\n";
        assert_eq!(
            DotStuffed(message).to_string(),
            "..top\r\n...two\r\nmid.dle\r\n..\r\nend\r\n.\r\n"
        );
    }
}
