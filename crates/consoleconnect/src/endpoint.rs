//! Names of the API calls, for metrics labels and error messages.

use std::fmt;

/// One Console Connect API call made by [`Client`](super::Client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    ListPorts,
    OracleMetros,
    CreateLayer2,
    GetConnection,
    SearchConnections,
    DeleteConnection,
    UpdateConnection,
    RequestChange,
    WithdrawChange,
    ConnectionUtilization,
}

impl Endpoint {
    pub const ALL: [Endpoint; 10] = [
        Endpoint::ListPorts,
        Endpoint::OracleMetros,
        Endpoint::CreateLayer2,
        Endpoint::GetConnection,
        Endpoint::SearchConnections,
        Endpoint::DeleteConnection,
        Endpoint::UpdateConnection,
        Endpoint::RequestChange,
        Endpoint::WithdrawChange,
        Endpoint::ConnectionUtilization,
    ];

    /// Stable snake_case label, e.g. `create_layer2`; the sandbox's stats use the same names.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ListPorts => "list_ports",
            Endpoint::OracleMetros => "oracle_metros",
            Endpoint::CreateLayer2 => "create_layer2",
            Endpoint::GetConnection => "get_connection",
            Endpoint::SearchConnections => "search_connections",
            Endpoint::DeleteConnection => "delete_connection",
            Endpoint::UpdateConnection => "update_connection",
            Endpoint::RequestChange => "change_request",
            Endpoint::WithdrawChange => "withdraw_change",
            Endpoint::ConnectionUtilization => "connection_utilization",
        }
    }

    pub fn method(self) -> &'static str {
        match self {
            Endpoint::CreateLayer2 | Endpoint::RequestChange => "PUT",
            Endpoint::DeleteConnection | Endpoint::WithdrawChange => "DELETE",
            Endpoint::UpdateConnection => "POST",
            Endpoint::ListPorts
            | Endpoint::OracleMetros
            | Endpoint::GetConnection
            | Endpoint::SearchConnections
            | Endpoint::ConnectionUtilization => "GET",
        }
    }

    /// The path with placeholders, e.g. `/api/company/{company}/connections/{id}`.
    pub fn path_template(self) -> &'static str {
        match self {
            Endpoint::ListPorts => "/api/company/{company}/ports",
            Endpoint::OracleMetros => "/api/company/oracle/metro/capabilities",
            Endpoint::CreateLayer2 => "/api/v2/company/{company}/connections/layer2",
            Endpoint::GetConnection => "/api/v2/company/{company}/connections/{id}",
            Endpoint::SearchConnections => "/api/v2/company/{company}/connections",
            Endpoint::DeleteConnection | Endpoint::UpdateConnection => {
                "/api/v2/company/{company}/connections/{id}"
            }
            Endpoint::RequestChange | Endpoint::WithdrawChange => {
                "/api/company/{company}/connections/{id}/change"
            }
            Endpoint::ConnectionUtilization => {
                "/api/company/{company}/connections/{id}/utilization"
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Label of an endpoint, for callers that prefer a function.
pub fn endpoint_label(endpoint: Endpoint) -> &'static str {
    endpoint.as_str()
}
