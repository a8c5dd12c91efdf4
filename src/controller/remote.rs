//! Act step: the Console Connect calls of one resource, through the shared caches.

use std::{sync::Arc, time::Instant};

use jiff::Timestamp;

use crate::{
    consoleconnect::{
        self as cc, ApiKey, Connection, ConnectionStatus, Layer2Request, Metro, Port,
    },
    crd::{FastConnectConnection, FastConnectConnectionStatus, Phase},
};

use super::{
    Context, Diagnosis, Retry,
    cache::{Scope, Snapshot, ago},
};

pub const INVALID_REQUEST: &str = "InvalidRequest";

/// How far before the recorded order time a found connection may have been created and still
/// count as ours (clock skew between us and Console Connect).
const ORDER_CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{call}: {source}")]
    Api {
        call: &'static str,
        #[source]
        source: cc::Error,
    },
    #[error(
        "a connection named {name} already exists (id {id}) and does not match this order; \
         set spec.connectionName to a unique name, or spec.connectionId to adopt it"
    )]
    NameTaken { name: String, id: String },
    #[error("{count} connections are named {name}; set spec.connectionId to the one to adopt")]
    OrderAmbiguous { name: String, count: usize },
    #[error("connection {id} does not exist in company {company}; check spec.connectionId")]
    AdoptNotFound { id: String, company: String },
    #[error("Console Connect refused this order; change the spec to try again")]
    StillRefused,
}

impl Error {
    fn api(call: &'static str) -> impl FnOnce(cc::Error) -> Error {
        move |source| Error::Api { call, source }
    }

    /// Only the user can fix it (spec or Console Connect side).
    pub fn needs_user(&self) -> bool {
        match self {
            Error::Api { source, .. } => matches!(source, cc::Error::InvalidRequest { .. }),
            _ => true,
        }
    }

    pub fn key_refused(&self) -> bool {
        matches!(
            self,
            Error::Api {
                source: cc::Error::Unauthorized { .. },
                ..
            }
        )
    }

    /// Whether a failed create certainly ordered nothing (the service answered and refused).
    pub fn nothing_was_created(&self) -> bool {
        matches!(
            self,
            Error::Api {
                source: cc::Error::InvalidRequest { .. }
                    | cc::Error::Unauthorized { .. }
                    | cc::Error::NotFound { .. }
                    | cc::Error::Throttled { .. },
                ..
            }
        )
    }
}

impl Diagnosis for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Api { source, .. } => match source {
                cc::Error::Unauthorized { .. } => "ApiKeyRefused",
                cc::Error::NotFound { .. } => "NotFound",
                cc::Error::InvalidRequest { .. } => INVALID_REQUEST,
                cc::Error::Throttled { .. } => "Throttled",
                cc::Error::Server { .. } => "ApiUnavailable",
                cc::Error::Transport { .. } | cc::Error::Timeout { .. } => "ApiUnreachable",
                cc::Error::Decode { .. } | cc::Error::UnexpectedStatus { .. } => {
                    "UnexpectedResponse"
                }
            },
            Error::NameTaken { .. } => "NameTaken",
            Error::OrderAmbiguous { .. } => "OrderAmbiguous",
            Error::AdoptNotFound { .. } => "ConnectionNotFound",
            Error::StillRefused => INVALID_REQUEST,
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Error::Api {
                source: cc::Error::InvalidRequest { .. },
                ..
            }
            | Error::StillRefused
            | Error::NameTaken { .. }
            | Error::OrderAmbiguous { .. } => Retry::SpecChange,
            Error::Api { source, .. } => Retry::Backoff {
                at_least: source.retry_after(),
            },
            // The connection may be created or shared later; look again now and then.
            Error::AdoptNotFound { .. } => Retry::Backoff { at_least: None },
        }
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
            .map_err(Error::api("listing ports"))
    }

    pub async fn metros(&self) -> Result<Arc<Snapshot<Metro>>, Error> {
        let api = &self.ctx.api;
        self.ctx
            .catalog
            .metros(&self.scope, || api.oracle_metros(self.key))
            .await
            .map_err(Error::api("listing Oracle metros"))
    }

    async fn connections(&self, fresh_after: Instant) -> Result<Arc<Snapshot<Connection>>, Error> {
        let api = &self.ctx.api;
        self.ctx
            .catalog
            .connections(&self.scope, fresh_after, || {
                api.list_connections(self.key, self.company)
            })
            .await
            .map_err(Error::api("listing connections"))
    }

    /// The connection as seen by the company-wide poll, at the cadence of its phase. `None`
    /// when it no longer exists.
    pub async fn observe(
        &self,
        id: &str,
        phase: Option<Phase>,
    ) -> Result<Option<Connection>, Error> {
        let settings = &self.ctx.settings;
        let max_age = match phase {
            Some(Phase::Active | Phase::Failed) => settings.poll_active,
            _ => settings.poll_progress,
        };
        let connections = self.connections(ago(max_age)).await?;
        if let Some(found) = connections.items.iter().find(|c| c.id == id) {
            return Ok(Some(found.clone()));
        }
        // Missing from the list: it may be newer than the list, or gone. A direct read decides.
        self.get(id).await
    }

    /// The connection as it is now, read directly.
    pub async fn observe_now(&self, id: &str) -> Result<Option<Connection>, Error> {
        self.get(id).await
    }

    async fn get(&self, id: &str) -> Result<Option<Connection>, Error> {
        let call = self.ctx.api.get_connection(self.key, self.company, id);
        match self.ctx.catalog.guarded(&self.scope, call).await {
            Ok(connection) if connection.status == ConnectionStatus::Deleted => Ok(None),
            Ok(connection) => Ok(Some(connection)),
            Err(cc::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(Error::api("reading the connection")(error)),
        }
    }

    pub async fn adopt(&self, id: &str) -> Result<Connection, Error> {
        self.get(id).await?.ok_or_else(|| Error::AdoptNotFound {
            id: id.to_owned(),
            company: self.company.to_owned(),
        })
    }

    /// The connection an earlier order of this resource created, if any: looked up by its
    /// unique name in a list fetched now.
    pub async fn find_order(
        &self,
        fcc: &FastConnectConnection,
        name: &str,
        status: &FastConnectConnectionStatus,
    ) -> Result<Option<Connection>, Error> {
        let connections = self.connections(Instant::now()).await?;
        let named: Vec<&Connection> = connections
            .items
            .iter()
            .filter(|c| c.name == name && c.status != ConnectionStatus::Deleted)
            .collect();
        match named.as_slice() {
            [] => Ok(None),
            [only] if is_our_order(only, fcc, status) => Ok(Some((*only).clone())),
            [other] => Err(Error::NameTaken {
                name: name.to_owned(),
                id: other.id.clone(),
            }),
            many => Err(Error::OrderAmbiguous {
                name: name.to_owned(),
                count: many.len(),
            }),
        }
    }

    /// Places the order. Never retried here: without an idempotency key a retry could order
    /// twice; the caller's marker and [`Remote::find_order`] cover an unknown outcome.
    pub async fn create(&self, request: &Layer2Request) -> Result<Connection, Error> {
        let call = self.ctx.api.create_layer2(self.key, self.company, request);
        self.ctx
            .catalog
            .guarded(&self.scope, call)
            .await
            .map_err(Error::api("ordering the connection"))
    }

    /// Disconnects; `true` once the connection is gone (404 counts as gone).
    pub async fn disconnect(&self, connection: &Connection) -> Result<bool, Error> {
        match connection.status {
            ConnectionStatus::Deleted => return Ok(true),
            ConnectionStatus::Deleting => return Ok(false),
            _ => {}
        }
        let call = self
            .ctx
            .api
            .delete_connection(self.key, self.company, &connection.id);
        match self.ctx.catalog.guarded(&self.scope, call).await {
            Ok(()) => {}
            Err(cc::Error::NotFound { .. }) => return Ok(true),
            Err(error) => return Err(Error::api("disconnecting the connection")(error)),
        }
        // Deletion may complete at once; a direct read saves a poll round.
        Ok(self.get(&connection.id).await?.is_none())
    }
}

/// A connection found by name is ours only if it matches what we ordered, and was created no
/// earlier than our order (allowing for clock skew).
fn is_our_order(
    connection: &Connection,
    fcc: &FastConnectConnection,
    status: &FastConnectConnectionStatus,
) -> bool {
    let same_port = match (&connection.src_port_id, &status.port_id) {
        (Some(found), Some(ours)) => found == ours,
        _ => true,
    };
    let same_metro = match (&connection.dest_metro_id, &status.dest_metro_id) {
        (Some(found), Some(ours)) => found == ours,
        _ => true,
    };
    let same_speed = connection
        .speed
        .as_ref()
        .is_none_or(|s| s.value == f64::from(fcc.spec.speed_mbps));
    let not_older = match (
        connection
            .created_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok()),
        status
            .ordered_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok()),
    ) {
        (Some(created), Some(ordered)) => created >= ordered - ORDER_CLOCK_SKEW,
        _ => true,
    };
    same_port && same_metro && same_speed && not_older
}
