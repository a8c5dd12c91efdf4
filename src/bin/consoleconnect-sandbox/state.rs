//! Everything the sandbox remembers: fixtures, settings, connections and request statistics.
//!
//! Connection statuses are computed when read, from the creation time and the delays captured
//! at creation, so thousands of connections cost no timers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::config::{CompanyConfig, Config, FaultConfig, LifecycleConfig, MetroConfig, PortConfig};
use crate::validate::Order;

pub const CREATING: &str = "CREATING";
pub const PENDING: &str = "PENDING";
pub const ACTIVE: &str = "ACTIVE";
pub const DELETING: &str = "DELETING";
pub const DELETED: &str = "DELETED";

/// Shared state behind every handler.
pub struct AppState {
    pub fixtures: Fixtures,
    initial: Settings,
    settings: Mutex<Settings>,
    connections: Mutex<HashMap<String, Record>>,
    stats: Mutex<Stats>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub lifecycle: LifecycleConfig,
    pub faults: FaultConfig,
}

/// Immutable seed data.
pub struct Fixtures {
    config: Config,
    companies_by_key: HashMap<String, String>,
}

impl Fixtures {
    fn new(config: Config) -> Fixtures {
        let companies_by_key = config
            .companies
            .iter()
            .flat_map(|company| {
                company
                    .api_keys
                    .iter()
                    .map(|key| (key.trim().to_owned(), company.username.clone()))
            })
            .collect();
        Fixtures {
            config,
            companies_by_key,
        }
    }

    /// Username of the company owning `key`.
    pub fn company_of_key(&self, key: &str) -> Option<&str> {
        self.companies_by_key.get(key).map(String::as_str)
    }

    pub fn company(&self, username: &str) -> Option<&CompanyConfig> {
        self.config
            .companies
            .iter()
            .find(|c| c.username == username)
    }

    /// A port of any company, with its owner.
    pub fn port(&self, id: &str) -> Option<(&CompanyConfig, &PortConfig)> {
        self.config
            .companies
            .iter()
            .find_map(|c| c.ports.iter().find(|p| p.id == id).map(|p| (c, p)))
    }

    pub fn metro(&self, id: &str) -> Option<&MetroConfig> {
        self.config.oracle_metros.iter().find(|m| m.id == id)
    }

    pub fn metros(&self) -> &[MetroConfig] {
        &self.config.oracle_metros
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone)]
pub enum Phase {
    /// CREATING, then PENDING, then ACTIVE after `approval` (`None`: wait for an admin).
    Provisioning {
        creating: Duration,
        approval: Option<Duration>,
    },
    /// A status set by an admin call.
    Fixed {
        status: String,
        since: Timestamp,
        error_reason: Option<String>,
    },
    /// DELETING, then DELETED after `delay`.
    Deleting { since: Timestamp, delay: Duration },
}

#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub company: String,
    pub order: Order,
    pub src_vlan: u16,
    pub dest_vlan: u16,
    pub created_at: Timestamp,
    pub phase: Phase,
}

/// A connection's status at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub status: String,
    pub updated_at: Timestamp,
    pub error_reason: Option<String>,
}

impl View {
    fn at(status: &str, updated_at: Timestamp) -> View {
        View {
            status: status.to_owned(),
            updated_at,
            error_reason: None,
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.status == DELETED
    }
}

impl Record {
    pub fn view(&self, now: Timestamp) -> View {
        match &self.phase {
            Phase::Provisioning { creating, approval } => {
                let pending_at = after(self.created_at, *creating);
                if now < pending_at {
                    return View::at(CREATING, self.created_at);
                }
                let Some(approval) = approval else {
                    return View::at(PENDING, pending_at);
                };
                let active_at = after(pending_at, *approval);
                if now < active_at {
                    View::at(PENDING, pending_at)
                } else {
                    View::at(ACTIVE, active_at)
                }
            }
            Phase::Fixed {
                status,
                since,
                error_reason,
            } => View {
                status: status.clone(),
                updated_at: *since,
                error_reason: error_reason.clone(),
            },
            Phase::Deleting { since, delay } => {
                let deleted_at = after(*since, *delay);
                if now < deleted_at {
                    View::at(DELETING, *since)
                } else {
                    View::at(DELETED, deleted_at)
                }
            }
        }
    }

    /// The connection as the API shows it, modelled on the reference's create response.
    pub fn to_json(&self, view: &View) -> Value {
        let order = &self.order;
        json!({
            "id": self.id,
            "type": "LAYER2",
            "status": view.status,
            "errorReason": view.error_reason,
            "name": order.name,
            "srcRegionId": order.src_region_id,
            "destRegionId": order.dest_region_id,
            "createdAt": timestamp(self.created_at),
            "updatedAt": timestamp(view.updated_at),
            "speed": {"value": order.speed, "name": format!("{} Mbps", order.speed)},
            "subconnections": [],
            "vlan": {"srcVlan": self.src_vlan, "destVlan": self.dest_vlan},
            "cdrBillingType": "METRO",
            "payg": true,
            "billingType": [],
            "classOfService": order.class_of_service.as_deref().unwrap_or("BRONZE"),
            "srcPortId": order.port_id,
            "destPortId": order.dest_port_id,
            "destMetroId": order.dest_metro_id,
            "destDcf": order.dest_dcf,
            "destCompany": order.dest_company,
            "paymentType": order.payment_type,
            "duration": order.duration,
            "durationUnit": order.duration_unit,
            "evergreen": order.evergreen.unwrap_or(false),
        })
    }
}

fn after(at: Timestamp, delay: Duration) -> Timestamp {
    at.checked_add(delay).unwrap_or(Timestamp::MAX)
}

/// The API's timestamp format, e.g. `2024-08-19T01:09:16.376Z`.
pub fn timestamp(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Why an admin change was refused.
pub enum AdminRefusal {
    NotFound,
    Deleted,
    BeingDeleted,
}

#[derive(Default)]
pub struct Stats {
    counts: BTreeMap<String, BTreeMap<u16, u64>>,
    creates: Vec<Value>,
}

impl AppState {
    pub fn new(config: Config, settings: Settings) -> AppState {
        AppState {
            fixtures: Fixtures::new(config),
            initial: settings,
            settings: Mutex::new(settings),
            connections: Mutex::new(HashMap::new()),
            stats: Mutex::new(Stats::default()),
        }
    }

    pub fn settings(&self) -> Settings {
        *lock(&self.settings)
    }

    pub fn update_settings(&self, change: impl FnOnce(&mut Settings)) -> Settings {
        let mut settings = lock(&self.settings);
        change(&mut settings);
        *settings
    }

    /// Forgets connections and statistics and restores the settings the sandbox started with.
    pub fn reset(&self) {
        *lock(&self.settings) = self.initial;
        lock(&self.connections).clear();
        *lock(&self.stats) = Stats::default();
    }

    /// Stores a new connection and returns it as the create response shows it.
    pub fn insert(&self, company: &str, order: Order) -> Value {
        let lifecycle = self.settings().lifecycle;
        let approval = (!lifecycle.manual_approval).then_some(lifecycle.approval_delay);
        let mut connections = lock(&self.connections);
        let id = new_id(&connections);
        let record = Record {
            src_vlan: order.src_vlan.unwrap_or_else(random_vlan),
            dest_vlan: order.dest_vlan.unwrap_or_else(random_vlan),
            id: id.clone(),
            company: company.to_owned(),
            order,
            created_at: Timestamp::now(),
            phase: Phase::Provisioning {
                creating: lifecycle.creating_delay,
                approval,
            },
        };
        // Like the reference's create response, the answer always says CREATING.
        let json = record.to_json(&View::at(CREATING, record.created_at));
        connections.insert(id, record);
        json
    }

    /// A connection of `company` that is not deleted.
    pub fn visible(&self, company: &str, id: &str) -> Option<Value> {
        let now = Timestamp::now();
        let connections = lock(&self.connections);
        let record = connections.get(id).filter(|r| r.company == company)?;
        let view = record.view(now);
        (!view.is_deleted()).then(|| record.to_json(&view))
    }

    /// Connections of `company` that are not deleted, oldest first.
    pub fn visible_list(&self, company: &str) -> Vec<Value> {
        let now = Timestamp::now();
        let connections = lock(&self.connections);
        let mut records: Vec<(&Record, View)> = connections
            .values()
            .filter(|r| r.company == company)
            .map(|r| (r, r.view(now)))
            .filter(|(_, view)| !view.is_deleted())
            .collect();
        records.sort_by(|a, b| (a.0.created_at, &a.0.id).cmp(&(b.0.created_at, &b.0.id)));
        records.iter().map(|(r, view)| r.to_json(view)).collect()
    }

    /// Starts deleting a connection of `company`; a connection already being deleted is left
    /// alone. `None` if there is no such connection or it is already deleted.
    pub fn delete(&self, company: &str, id: &str) -> Option<Value> {
        let delay = self.settings().lifecycle.deleting_delay;
        let now = Timestamp::now();
        let mut connections = lock(&self.connections);
        let record = connections.get_mut(id).filter(|r| r.company == company)?;
        let view = record.view(now);
        if view.is_deleted() {
            return None;
        }
        if view.status != DELETING {
            record.phase = Phase::Deleting { since: now, delay };
        }
        let view = record.view(now);
        Some(record.to_json(&view))
    }

    /// Every connection, deleted ones included, with its owner; oldest first.
    pub fn all_connections(&self) -> Vec<Value> {
        let now = Timestamp::now();
        let connections = lock(&self.connections);
        let mut records: Vec<&Record> = connections.values().collect();
        records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        records.into_iter().map(|r| admin_json(r, now)).collect()
    }

    pub fn connection_for_admin(&self, id: &str) -> Option<Value> {
        let connections = lock(&self.connections);
        connections.get(id).map(|r| admin_json(r, Timestamp::now()))
    }

    /// Forces a status, as Console Connect or Oracle staff would. `out_of_band` allows it on a
    /// connection being deleted (used to finish a deletion).
    pub fn force_status(
        &self,
        id: &str,
        status: &str,
        error_reason: Option<String>,
        out_of_band: bool,
    ) -> Result<Value, AdminRefusal> {
        let now = Timestamp::now();
        let mut connections = lock(&self.connections);
        let record = connections.get_mut(id).ok_or(AdminRefusal::NotFound)?;
        let view = record.view(now);
        if view.is_deleted() {
            return Err(AdminRefusal::Deleted);
        }
        if view.status == DELETING && !out_of_band {
            return Err(AdminRefusal::BeingDeleted);
        }
        record.phase = Phase::Fixed {
            status: status.to_owned(),
            since: now,
            error_reason,
        };
        Ok(admin_json(record, now))
    }

    pub fn record_request(&self, endpoint: &str, status: u16) {
        let mut stats = lock(&self.stats);
        *stats
            .counts
            .entry(endpoint.to_owned())
            .or_default()
            .entry(status)
            .or_default() += 1;
    }

    pub fn record_create(&self, entry: Value) {
        lock(&self.stats).creates.push(entry);
    }

    pub fn reset_stats(&self) {
        *lock(&self.stats) = Stats::default();
    }

    pub fn stats_json(&self) -> Value {
        let stats = lock(&self.stats);
        let counts: BTreeMap<&str, BTreeMap<String, u64>> = stats
            .counts
            .iter()
            .map(|(endpoint, by_status)| {
                let by_status = by_status.iter().map(|(s, n)| (s.to_string(), *n)).collect();
                (endpoint.as_str(), by_status)
            })
            .collect();
        let total: u64 = stats.counts.values().flat_map(|m| m.values()).sum();
        json!({"counts": counts, "totalRequests": total, "creates": stats.creates})
    }
}

fn admin_json(record: &Record, now: Timestamp) -> Value {
    let view = record.view(now);
    let mut json = record.to_json(&view);
    if let Some(object) = json.as_object_mut() {
        object.insert("company".into(), Value::from(record.company.clone()));
        object.insert("deleted".into(), Value::from(view.is_deleted()));
    }
    json
}

/// Ids look like the service's: 24 hex digits.
fn new_id(existing: &HashMap<String, Record>) -> String {
    loop {
        let id = format!("{:024x}", rand::random::<u128>() >> 32);
        if !existing.contains_key(&id) {
            return id;
        }
    }
}

fn random_vlan() -> u16 {
    rand::random_range(2..=4094)
}

/// A panic while holding a lock leaves plain data behind, still fine to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(phase: Phase, created_at: Timestamp) -> Record {
        Record {
            id: "a".repeat(24),
            company: "acme".into(),
            order: Order::example(),
            src_vlan: 10,
            dest_vlan: 20,
            created_at,
            phase,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn provisioning_advances_with_time() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let r = record(
            Phase::Provisioning {
                creating: secs(2),
                approval: Some(secs(5)),
            },
            t0,
        );
        assert_eq!(r.view(t0).status, CREATING);
        assert_eq!(r.view(after(t0, secs(2))).status, PENDING);
        assert_eq!(r.view(after(t0, secs(6))).updated_at, after(t0, secs(2)));
        let active = r.view(after(t0, secs(7)));
        assert_eq!(active.status, ACTIVE);
        assert_eq!(active.updated_at, after(t0, secs(7)));
    }

    #[test]
    fn zero_delays_are_active_at_once_and_manual_holds() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let instant = record(
            Phase::Provisioning {
                creating: Duration::ZERO,
                approval: Some(Duration::ZERO),
            },
            t0,
        );
        assert_eq!(instant.view(t0).status, ACTIVE);
        let manual = record(
            Phase::Provisioning {
                creating: Duration::ZERO,
                approval: None,
            },
            t0,
        );
        assert_eq!(manual.view(after(t0, secs(86_400))).status, PENDING);
    }

    #[test]
    fn deleting_becomes_deleted() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let r = record(
            Phase::Deleting {
                since: t0,
                delay: secs(1),
            },
            t0,
        );
        assert_eq!(r.view(t0).status, DELETING);
        assert!(r.view(after(t0, secs(1))).is_deleted());
    }

    #[test]
    fn timestamps_have_milliseconds() {
        let t: Timestamp = "2024-08-19T01:09:16.376123Z".parse().unwrap();
        assert_eq!(timestamp(t), "2024-08-19T01:09:16.376Z");
    }
}
