//! Act and observe steps: the Console Connect calls of one resource, through the shared caches.

use std::{sync::Arc, time::Instant};

use futures::future::join_all;
use jiff::Timestamp;

use crate::consoleconnect::{
    self as cc, ApiKey, Connection, Layer2Request, Metro, Port, SEARCHED_STATUSES,
};

use super::{
    Context, Diagnosis,
    cache::{Scope, Snapshot},
    decide::Named,
    reason::Reason,
};

/// Which call failed: a refusal means something else for an order than for a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display)]
pub enum Call {
    #[strum(to_string = "listing ports")]
    Ports,
    #[strum(to_string = "listing Oracle metros")]
    Metros,
    #[strum(to_string = "searching connections")]
    Search,
    #[strum(to_string = "reading the connection")]
    Read,
    #[strum(to_string = "ordering the connection")]
    Order,
    #[strum(to_string = "disconnecting the connection")]
    Disconnect,
    #[strum(to_string = "updating the connection")]
    Update,
    #[strum(to_string = "requesting a speed change")]
    RequestChange,
    #[strum(to_string = "withdrawing the change request")]
    WithdrawChange,
    #[strum(to_string = "reading the connection's traffic")]
    Traffic,
}

#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct Error {
    pub call: Call,
    #[source]
    pub source: cc::Error,
}

impl Error {
    fn on(call: Call) -> impl FnOnce(cc::Error) -> Error {
        move |source| Error { call, source }
    }

    /// The key itself was refused: the Secret may hold a rotated one, read it afresh.
    pub fn key_refused(&self) -> bool {
        matches!(self.source, cc::Error::Unauthorized { .. })
    }

    /// A failed order that certainly ordered nothing: the service answered and refused.
    pub fn nothing_was_ordered(&self) -> bool {
        self.call == Call::Order && self.refused()
    }

    /// The service answered and refused, so the call changed nothing.
    pub fn refused(&self) -> bool {
        matches!(
            self.source,
            cc::Error::InvalidRequest { .. }
                | cc::Error::Unauthorized { .. }
                | cc::Error::AccessDenied { .. }
                | cc::Error::NotFound { .. }
                | cc::Error::Throttled { .. }
        ) && !self.source.is_name_in_use()
    }
}

impl Diagnosis for Error {
    fn reason(&self) -> Reason {
        match &self.source {
            source @ cc::Error::InvalidRequest { .. } => match self.call {
                Call::Order if source.is_name_in_use() => Reason::NameInUse,
                Call::Order => Reason::OrderRefused,
                Call::Update | Call::RequestChange | Call::WithdrawChange => Reason::ChangeRefused,
                _ => Reason::RequestRejected,
            },
            cc::Error::Unauthorized { .. } => Reason::ApiKeyRefused,
            cc::Error::AccessDenied { .. } => Reason::AccessDenied,
            cc::Error::Throttled { .. } => Reason::Throttled,
            cc::Error::Server { .. } => Reason::ApiUnavailable,
            cc::Error::Transport { .. } | cc::Error::Timeout { .. } => Reason::ApiUnreachable,
            cc::Error::NotFound { .. }
            | cc::Error::Decode { .. }
            | cc::Error::BodyTooLarge { .. }
            | cc::Error::UnexpectedStatus { .. } => Reason::UnexpectedResponse,
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        self.source.retry_after()
    }
}

/// One resource's view of its company in Console Connect.
pub struct Remote<'a> {
    ctx: &'a Context,
    company: &'a str,
    key: &'a ApiKey,
    scope: Scope,
}

impl<'a> Remote<'a> {
    pub fn new(ctx: &'a Context, company: &'a str, key: &'a ApiKey) -> Self {
        Self {
            scope: ctx.catalog.scope(company, key),
            ctx,
            company,
            key,
        }
    }

    pub async fn ports(&self) -> Result<Arc<Snapshot<Port>>, Error> {
        let api = &self.ctx.api;
        self.ctx
            .catalog
            .ports(&self.scope, || api.list_ports(self.key, self.company))
            .await
            .map_err(Error::on(Call::Ports))
    }

    pub async fn metros(&self) -> Result<Arc<Snapshot<Metro>>, Error> {
        let api = &self.ctx.api;
        self.ctx
            .catalog
            .metros(&self.scope, || api.oracle_metros(self.key))
            .await
            .map_err(Error::on(Call::Metros))
    }

    async fn search(
        &self,
        status: &str,
        fresh_after: Instant,
    ) -> Result<Arc<Snapshot<Connection>>, Error> {
        let api = &self.ctx.api;
        self.ctx
            .catalog
            .connections(&self.scope, status, fresh_after, || {
                api.search_connections(self.key, self.company, status)
            })
            .await
            .map_err(Error::on(Call::Search))
    }

    /// The connection `id`, from the shared search of the status it was last seen in (one
    /// search per status and company, whatever the number of connections), else read
    /// directly. `None`: it is gone (404, DELETED, `deleted`).
    pub async fn observe(
        &self,
        id: &str,
        last_status: Option<&str>,
        fresh_after: Instant,
    ) -> Result<Option<Connection>, Error> {
        if let Some(status) = last_status {
            let listed = self.search(status, fresh_after).await?;
            if let Some(found) = listed.items.iter().find(|c| c.id == id) {
                return Ok(Some(found.clone()));
            }
        }
        // Not listed under its last status: it moved on, is newer than the search, or is gone.
        self.read(id).await
    }

    pub async fn read(&self, id: &str) -> Result<Option<Connection>, Error> {
        let call = self.ctx.api.get_connection(self.key, self.company, id);
        match self.ctx.catalog.guarded(&self.scope, call).await {
            Ok(connection) if connection.is_deleted() => Ok(None),
            Ok(connection) => Ok(Some(connection)),
            Err(cc::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(Error::on(Call::Read)(error)),
        }
    }

    /// Every connection named `name`, in any status but DELETED, from searches begun at or
    /// after `fresh_after` (one per status, shared by all resources of the company). Each
    /// status's search is kept on its own, so a retry after a failure redoes only the ones
    /// that failed or went stale.
    pub async fn named(&self, name: &str, fresh_after: Instant) -> Result<Named, Error> {
        let searches = SEARCHED_STATUSES
            .iter()
            .map(|status| self.search(status, fresh_after));
        // Every search runs to its end even when another fails: stopping at the first failure
        // would throw away the searches still under way, and the retry would redo them too.
        let snapshots: Vec<_> = join_all(searches)
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let oldest = snapshots
            .iter()
            .map(|s| s.fetched_at)
            .min()
            .unwrap_or_else(Instant::now);
        let mut connections: Vec<Connection> = Vec::new();
        for connection in snapshots.iter().flat_map(|s| s.items.iter()) {
            if connection.name == name && !connections.iter().any(|c| c.id == connection.id) {
                connections.push(connection.clone());
            }
        }
        Ok(Named {
            connections,
            fetched_at: wall_clock(oldest),
        })
    }

    /// Places the order. Never retried here: without an idempotency key a retry could order
    /// twice; the create marker and the settle window cover an unknown outcome.
    pub async fn create(&self, request: &Layer2Request) -> Result<Connection, Error> {
        let call = self.ctx.api.create_layer2(self.key, self.company, request);
        self.ctx
            .catalog
            .guarded(&self.scope, call)
            .await
            .map_err(Error::on(Call::Order))
    }

    /// Lowers the speed or renames.
    pub async fn update(
        &self,
        id: &str,
        update: &cc::ConnectionUpdate,
    ) -> Result<Option<Connection>, Error> {
        let api = &self.ctx.api;
        let call = api.update_connection(self.key, self.company, id, update);
        self.guarded(Call::Update, call).await
    }

    /// Opens (or moves) the change request to `speed_mbps`.
    pub async fn request_change(
        &self,
        id: &str,
        speed_mbps: u32,
    ) -> Result<Option<Connection>, Error> {
        let api = &self.ctx.api;
        let call = api.request_change(self.key, self.company, id, speed_mbps);
        self.guarded(Call::RequestChange, call).await
    }

    /// Withdraws our change request.
    pub async fn withdraw_change(&self, id: &str) -> Result<Option<Connection>, Error> {
        let call = self.ctx.api.withdraw_change(self.key, self.company, id);
        self.guarded(Call::WithdrawChange, call).await
    }

    /// The connection's average traffic over `window`; `None`: nothing measured.
    pub async fn traffic(
        &self,
        id: &str,
        window: (Timestamp, Timestamp),
        resolution: cc::Resolution,
    ) -> Result<Option<cc::Traffic>, Error> {
        let api = &self.ctx.api;
        let call = api.connection_traffic(self.key, self.company, id, window, resolution);
        self.guarded(Call::Traffic, call).await
    }

    /// A call within the company's throttle pause.
    async fn guarded<T>(
        &self,
        call: Call,
        request: impl std::future::Future<Output = Result<T, cc::Error>>,
    ) -> Result<T, Error> {
        self.ctx
            .catalog
            .guarded(&self.scope, request)
            .await
            .map_err(Error::on(call))
    }

    /// Asks for the connection to be disconnected; `true` when it was already gone (404).
    pub async fn disconnect(&self, id: &str) -> Result<bool, Error> {
        let call = self.ctx.api.delete_connection(self.key, self.company, id);
        match self.ctx.catalog.guarded(&self.scope, call).await {
            Ok(()) => Ok(false),
            Err(cc::Error::NotFound { .. }) => Ok(true),
            Err(error) => Err(Error::on(Call::Disconnect)(error)),
        }
    }
}

/// The wall-clock time of a monotonic instant, for comparing with timestamps in status.
fn wall_clock(instant: Instant) -> Timestamp {
    let elapsed = jiff::SignedDuration::try_from(instant.elapsed()).unwrap_or_default();
    Timestamp::now() - elapsed
}
