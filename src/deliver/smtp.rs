//! A pool of SMTP connections whose sockets have `TCP_NODELAY` set.
//!
//! lettre's own pool cannot set it, and lettre writes a message and its
//! terminating `<CRLF>.<CRLF>` in two writes. With Nagle's algorithm on,
//! the second, tiny write waits until the relay acknowledges the first,
//! and the relay delays that ACK (40 ms on Linux) because it has nothing
//! to say before the dot arrives: about 45 ms per message per connection,
//! so 4 connections could never exceed ~90 messages a second. lettre
//! still speaks the protocol (EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA); this
//! module only opens the sockets and keeps the idle connections.
//!
//! Implicit TLS (port 465) needs a TLS stream before the greeting, which
//! lettre only builds on its own socket, so those connections are opened
//! by lettre and keep Nagle's algorithm.

use super::DeliverError;
use crate::config::SmtpTls;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An idle connection is dropped instead of reused after this long: relays
/// close idle sessions, typically after a minute or more.
const MAX_IDLE: Duration = Duration::from_secs(50);

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
    /// lettre's pool does) or a new one, and keeps the connection for the
    /// next message unless it broke or enough are idle already.
    ///
    /// lettre's async client bounds only the connect, so a relay that
    /// accepts a connection and then stalls would hang the send forever:
    /// the whole exchange is bounded here by `send_timeout()`, and a send
    /// cut off that way is a [`DeliverError::Timeout`], whose outcome is
    /// unknown (the relay may have taken the message).
    pub async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<(), DeliverError> {
        let exchange = async {
            let mut conn = self.checkout().await?;
            let result = conn.send(envelope, bytes).await;
            self.checkin(conn).await;
            result.map(|_| ()).map_err(DeliverError::from_lettre)
        };
        match tokio::time::timeout(self.send_timeout(), exchange).await {
            Ok(r) => r,
            Err(_) => Err(DeliverError::Timeout(format!(
                "no complete reply from the SMTP relay within {} s",
                self.send_timeout().as_secs()
            ))),
        }
    }

    /// The bound on one whole send (connect, commands and data): twice the
    /// configured `mail.smtp.timeout_secs`.
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

    async fn checkout(&self) -> Result<AsyncSmtpConnection, DeliverError> {
        loop {
            let next = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((mut conn, since)) = next else {
                return self.connect().await;
            };
            if since.elapsed() < MAX_IDLE && conn.test_connected().await {
                return Ok(conn);
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
