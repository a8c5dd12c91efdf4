//! Everything the sandbox remembers: fixtures, settings, connections and request statistics.
//!
//! Connection statuses (and change-request approvals) are computed when read, from the creation
//! time and the delays captured at creation, so thousands of connections cost no timers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::answers::AnswerFaults;
use crate::change::{
    ChangePlan, ChangeRequest, ChangeStatus, ChangeView, PortRoom, plan_change, plan_speed_update,
};
use crate::config::{
    Behaviour, CompanyConfig, Config, ConnectionShape, DeletedReads, FaultConfig, LifecycleConfig,
    MetroConfig, PortConfig,
};
use crate::traffic;
use crate::validate::{Order, Update};

pub const CREATING: &str = "CREATING";
pub const PENDING: &str = "PENDING";
pub const PENDING_ACCEPTANCE: &str = "PENDING_ACCEPTANCE";
pub const ACTIVE: &str = "ACTIVE";
pub const DENIED: &str = "DENIED";
pub const DELETING: &str = "DELETING";
pub const DELETED: &str = "DELETED";
pub const CANCELLED: &str = "CANCELLED";

/// Oracle's company id in `destCompany` of the spec shape (made up; the fixture has no Oracle).
pub const ORACLE_COMPANY_ID: &str = "5a0c8b0c2e5d3f0011a0c0de";

/// Statuses compare case-insensitively, with spaces and underscores alike:
/// `pending acceptance` and `PENDING_ACCEPTANCE` are the same.
pub fn normalise_status(status: &str) -> String {
    status
        .split(|c: char| c.is_whitespace() || c == '_')
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_uppercase)
        .collect::<Vec<_>>()
        .join("_")
}

/// Whether a connection in `status` takes bandwidth from its port.
fn uses_capacity(status: &str) -> bool {
    ![DELETED, CANCELLED, DENIED].contains(&normalise_status(status).as_str())
}

/// What a DELETE does to a connection in `status`.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteAction {
    /// Never active: the request is cancelled.
    Cancel,
    /// Already cancelled or being deleted: nothing changes.
    Nothing,
    /// Live: DELETING, then DELETED.
    Delete,
}

pub fn delete_action(status: &str) -> DeleteAction {
    match normalise_status(status).as_str() {
        CREATING | PENDING | PENDING_ACCEPTANCE => DeleteAction::Cancel,
        CANCELLED | DELETING => DeleteAction::Nothing,
        _ => DeleteAction::Delete,
    }
}

/// Page `page` (1-based) of `count` items.
pub fn page_of<T>(items: Vec<T>, page: u64, count: u64) -> Vec<T> {
    let skip = page.saturating_sub(1).saturating_mul(count);
    let skip = usize::try_from(skip).unwrap_or(usize::MAX);
    let take = usize::try_from(count).unwrap_or(usize::MAX);
    items.into_iter().skip(skip).take(take).collect()
}

/// Whether a connection created at `created_at` shows in searches and lists at `now`.
fn listed(created_at: Timestamp, lag: Duration, now: Timestamp) -> bool {
    lag.is_zero() || after(created_at, lag) <= now
}

/// Shared state behind every handler.
pub struct AppState {
    pub fixtures: Fixtures,
    initial: Settings,
    settings: Mutex<Settings>,
    connections: Mutex<HashMap<String, Record>>,
    /// Traffic the admin set, by connection id.
    traffic: Mutex<HashMap<String, traffic::Level>>,
    stats: Mutex<Stats>,
    /// Answers replaced by a huge or endless body (test faults).
    pub answers: AnswerFaults,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub lifecycle: LifecycleConfig,
    pub faults: FaultConfig,
    pub behaviour: Behaviour,
}

/// Immutable seed data.
pub struct Fixtures {
    config: Config,
    /// Key → (company username, read only).
    companies_by_key: HashMap<String, (String, bool)>,
}

impl Fixtures {
    fn new(config: Config) -> Fixtures {
        let companies_by_key = config
            .companies
            .iter()
            .flat_map(|company| {
                let owner = |read_only| {
                    move |key: &String| {
                        (key.trim().to_owned(), (company.username.clone(), read_only))
                    }
                };
                let full = company.api_keys.iter().map(owner(false));
                full.chain(company.read_only_api_keys.iter().map(owner(true)))
            })
            .collect();
        Fixtures {
            config,
            companies_by_key,
        }
    }

    /// Username of the company owning `key`, and whether the key may only read.
    pub fn company_of_key(&self, key: &str) -> Option<(&str, bool)> {
        self.companies_by_key
            .get(key)
            .map(|(company, read_only)| (company.as_str(), *read_only))
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
    pub company_id: String,
    /// What was ordered, with the name and speed it has had since (renames, decreases, approved
    /// changes once settled, admin edits).
    pub order: Order,
    pub src_vlan: u16,
    pub dest_vlan: u16,
    pub created_at: Timestamp,
    pub phase: Phase,
    /// When the name or speed last changed directly (update call, decrease, admin edit).
    pub changed_at: Option<Timestamp>,
    /// The last change request, kept after it ends.
    pub change: Option<ChangeRequest>,
}

/// Where the lifecycle has a connection at one moment.
#[derive(Debug, Clone, PartialEq)]
struct Stage {
    status: String,
    since: Timestamp,
    error_reason: Option<String>,
}

impl Stage {
    fn at(status: &str, since: Timestamp) -> Stage {
        Stage {
            status: status.to_owned(),
            since,
            error_reason: None,
        }
    }
}

/// A connection at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub status: String,
    /// The latest of the status change, a direct change and the change request's last step.
    pub updated_at: Timestamp,
    pub error_reason: Option<String>,
    /// Mbps in force.
    pub speed: u64,
    pub change: Option<ChangeView>,
}

impl View {
    pub fn is_deleted(&self) -> bool {
        self.status == DELETED
    }

    fn deleted_at(&self) -> Option<String> {
        self.is_deleted().then(|| timestamp(self.updated_at))
    }
}

impl Record {
    pub fn view(&self, now: Timestamp) -> View {
        let stage = self.stage(now);
        let change = self.change.as_ref().map(|c| c.view(now));
        let updated_at = [self.changed_at, change.as_ref().map(|c| c.since)]
            .into_iter()
            .flatten()
            .fold(stage.since, Timestamp::max);
        View {
            status: stage.status,
            updated_at,
            error_reason: stage.error_reason,
            speed: self.speed_at(now),
            change,
        }
    }

    fn stage(&self, now: Timestamp) -> Stage {
        match &self.phase {
            Phase::Provisioning { creating, approval } => {
                let pending_at = after(self.created_at, *creating);
                if now < pending_at {
                    return Stage::at(CREATING, self.created_at);
                }
                let Some(approval) = approval else {
                    return Stage::at(PENDING, pending_at);
                };
                let active_at = after(pending_at, *approval);
                if now < active_at {
                    Stage::at(PENDING, pending_at)
                } else {
                    Stage::at(ACTIVE, active_at)
                }
            }
            Phase::Fixed {
                status,
                since,
                error_reason,
            } => Stage {
                status: status.clone(),
                since: *since,
                error_reason: error_reason.clone(),
            },
            Phase::Deleting { since, delay } => {
                let deleted_at = after(*since, *delay);
                if now < deleted_at {
                    Stage::at(DELETING, *since)
                } else {
                    Stage::at(DELETED, deleted_at)
                }
            }
        }
    }

    /// The speed at `now`: as ordered or last changed, or the change request's once approved.
    pub fn speed_at(&self, now: Timestamp) -> u64 {
        self.change
            .as_ref()
            .filter(|c| c.auto_approved_at(now).is_some())
            .map_or(self.order.speed, |c| c.speed)
    }

    /// The speed a change request still PENDING at `now` asks for.
    pub fn pending_speed(&self, now: Timestamp) -> Option<u64> {
        self.change
            .as_ref()
            .filter(|c| c.is_pending(now))
            .map(|c| c.speed)
    }

    /// Mbps the connection holds on its port at `now` while live: a pending increase reserves
    /// its bandwidth as soon as it is requested.
    fn reserved_at(&self, now: Timestamp) -> u64 {
        self.speed_at(now).max(self.pending_speed(now).unwrap_or(0))
    }

    /// Makes an automatic approval that has happened by `now` explicit, so the record can be
    /// changed from there.
    fn settle(&mut self, now: Timestamp) {
        if let Some(change) = &mut self.change
            && let Some(approved_at) = change.auto_approved_at(now)
        {
            change.end(ChangeStatus::Approved, approved_at);
            self.order.speed = change.speed;
        }
    }

    /// A connection that goes away takes its pending change request with it.
    fn withdraw_pending_change(&mut self, now: Timestamp) {
        self.settle(now);
        if let Some(change) = self.change.as_mut().filter(|c| c.is_pending(now)) {
            change.end(ChangeStatus::Withdrawn, now);
        }
    }

    /// The connection as the API shows it: in the reference's shape (modelled on its create
    /// response) or in the published spec example's.
    pub fn to_json(&self, view: &View, shape: ConnectionShape) -> Value {
        let order = &self.order;
        let mut json = json!({
            "id": self.id,
            "type": "LAYER2",
            "status": view.status,
            "errorReason": view.error_reason,
            "name": order.name,
            "srcRegionId": order.src_region_id,
            "destRegionId": order.dest_region_id,
            "createdAt": timestamp(self.created_at),
            "updatedAt": timestamp(view.updated_at),
            "deleted": view.is_deleted(),
            "deletedAt": view.deleted_at(),
            "speed": {"value": view.speed, "name": format!("{} Mbps", view.speed)},
            "subconnections": [],
            "vlan": {"srcVlan": self.src_vlan, "destVlan": self.dest_vlan},
            "srcVlanRequest": order.src_vlan,
            "destVlanRequest": order.dest_vlan,
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
        });
        let Some(object) = json.as_object_mut() else {
            return json;
        };
        match shape {
            ConnectionShape::Reference => {
                if let Some(change) = &view.change {
                    object.insert("request".into(), change.reference_json());
                }
            }
            ConnectionShape::Spec => {
                object.remove("srcPortId");
                object.remove("destMetroId");
                let spec = json!({
                    "destCompany": [{"id": ORACLE_COMPANY_ID}],
                    "destMetro": [{"id": order.dest_metro_id}],
                    "port": [{"id": order.port_id}, {"companyId": self.company_id}],
                    "vlan": [{"id": null}, {"service": null}, {"customer": []}],
                    "srcVlan": self.src_vlan,
                    "destVlan": self.dest_vlan,
                    "request": spec_request(view, &order.dest_metro_id),
                });
                if let Value::Object(spec) = spec {
                    object.extend(spec);
                }
            }
        }
        json
    }
}

/// `request` in the spec shape: the change request if there is one, else the connection
/// request while it waits for approval, else `[]`.
fn spec_request(view: &View, dest_metro_id: &str) -> Value {
    if let Some(change) = &view.change {
        return change.spec_json(dest_metro_id);
    }
    if normalise_status(&view.status) == PENDING {
        return json!([{"status": PENDING}, {"speed": view.speed}]);
    }
    json!([])
}

pub fn after(at: Timestamp, delay: Duration) -> Timestamp {
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
    /// An approval or rejection with no change request PENDING.
    NothingPending,
}

/// Why a day-2 call (update, change request, withdrawal) was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ChangeRefusal {
    /// 404 like the read: unknown, another company's, or DELETED.
    NotFound,
    /// 400 with this message.
    Invalid(String),
}

impl From<String> for ChangeRefusal {
    fn from(message: String) -> ChangeRefusal {
        ChangeRefusal::Invalid(message)
    }
}

#[derive(Default)]
pub struct Stats {
    counts: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Requests by the company of the API key that made them, then by endpoint (any status).
    by_company: BTreeMap<String, BTreeMap<String, u64>>,
    creates: Vec<Value>,
    /// Change requests (`PUT .../change`) received, like `creates`.
    changes: Vec<Value>,
    /// Utilization reads answered, by connection id.
    traffic_reads: BTreeMap<String, u64>,
}

/// A paged search: `status` already normalised, `count` already clamped.
#[derive(Debug, Clone)]
pub struct Search {
    pub status: String,
    pub page: u64,
    pub count: u64,
}

/// Connections made by `POST /_sandbox/seed`.
#[derive(Debug, Clone)]
pub struct Seed {
    pub company: String,
    pub count: usize,
    pub status: String,
    pub name_prefix: String,
    pub port_id: Option<String>,
    pub speed: u64,
}

/// How far in the past seeded connections are created, so later creates sort after them.
const SEED_AGE: Duration = Duration::from_secs(86_400);

impl AppState {
    pub fn new(config: Config, settings: Settings) -> AppState {
        AppState {
            fixtures: Fixtures::new(config),
            initial: settings,
            settings: Mutex::new(settings),
            connections: Mutex::new(HashMap::new()),
            traffic: Mutex::new(HashMap::new()),
            stats: Mutex::new(Stats::default()),
            answers: AnswerFaults::default(),
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
        lock(&self.traffic).clear();
        *lock(&self.stats) = Stats::default();
        self.answers.clear();
    }

    fn shape(&self) -> ConnectionShape {
        self.settings().behaviour.connection_shape
    }

    /// Stores a new connection and returns it as the create response shows it; `Err` is a 400
    /// message (name in use, not enough capacity left on the port).
    pub fn insert(&self, company: &str, order: Order) -> Result<Value, String> {
        let settings = self.settings();
        let lifecycle = settings.lifecycle;
        let approval = (!lifecycle.manual_approval).then_some(lifecycle.approval_delay);
        let company_id = self.company_id(company);
        let now = Timestamp::now();
        let mut connections = lock(&self.connections);
        if settings.behaviour.refuse_duplicate_names {
            refuse_name_in_use(&connections, company, &order.name, None, now)?;
        }
        if let Some((_, port)) = self.fixtures.port(&order.port_id) {
            let mine = connections.values().filter(|r| r.company == company);
            let used = usage_on(mine, &order.port_id, now);
            let remaining = port_capacity(port).saturating_sub(used);
            if order.speed > remaining {
                return Err(format!(
                    "'speed' of {} Mbps exceeds the {remaining} Mbps remaining on port '{}'",
                    order.speed, port.name
                ));
            }
        }
        let id = new_id(&connections);
        let record = Record {
            src_vlan: order.src_vlan.unwrap_or_else(random_vlan),
            dest_vlan: order.dest_vlan.unwrap_or_else(random_vlan),
            id: id.clone(),
            company: company.to_owned(),
            company_id,
            order,
            created_at: now,
            phase: Phase::Provisioning {
                creating: lifecycle.creating_delay,
                approval,
            },
            changed_at: None,
            change: None,
        };
        // Like the reference's create response, the answer always says CREATING.
        let view = View {
            status: CREATING.to_owned(),
            updated_at: record.created_at,
            ..record.view(now)
        };
        let json = record.to_json(&view, settings.behaviour.connection_shape);
        connections.insert(id, record);
        Ok(json)
    }

    fn company_id(&self, company: &str) -> String {
        self.fixtures
            .company(company)
            .map(|c| c.id.clone())
            .unwrap_or_default()
    }

    /// Mbps used by live connections of `company`, by port id.
    pub fn port_usage(&self, company: &str) -> HashMap<String, u64> {
        let now = Timestamp::now();
        let connections = lock(&self.connections);
        let mut usage: HashMap<String, u64> = HashMap::new();
        for record in connections.values().filter(|r| r.company == company) {
            if uses_capacity(&record.view(now).status) {
                let used = usage.entry(record.order.port_id.clone()).or_default();
                *used = used.saturating_add(record.reserved_at(now));
            }
        }
        usage
    }

    /// A connection of `company` read by id: not when DELETED, unless `deleted_reads` shows
    /// deleted ones.
    pub fn visible(&self, company: &str, id: &str, deleted_reads: DeletedReads) -> Option<Value> {
        let now = Timestamp::now();
        let shape = self.shape();
        let connections = lock(&self.connections);
        let record = connections.get(id).filter(|r| r.company == company)?;
        let view = record.view(now);
        (!view.is_deleted() || deleted_reads == DeletedReads::Show)
            .then(|| record.to_json(&view, shape))
    }

    /// Connections of `company` past the listing lag whose view passes `keep`, oldest first.
    fn listed(&self, company: &str, keep: impl Fn(&View) -> bool) -> Vec<(Record, View)> {
        let now = Timestamp::now();
        let lag = self.settings().behaviour.list_lag;
        let connections = lock(&self.connections);
        let mut records: Vec<(Record, View)> = connections
            .values()
            .filter(|r| r.company == company && listed(r.created_at, lag, now))
            .map(|r| (r.clone(), r.view(now)))
            .filter(|(_, view)| keep(view))
            .collect();
        drop(connections);
        records.sort_by(|a, b| (a.0.created_at, &a.0.id).cmp(&(b.0.created_at, &b.0.id)));
        records
    }

    /// The unpaged list: connections of `company` that are not deleted, oldest first.
    pub fn visible_list(&self, company: &str) -> Vec<Value> {
        let shape = self.shape();
        self.listed(company, |view| !view.is_deleted())
            .iter()
            .map(|(r, view)| r.to_json(view, shape))
            .collect()
    }

    /// One page of the connections of `company` in a status, oldest first.
    pub fn search(&self, company: &str, search: &Search) -> Vec<Value> {
        let shape = self.shape();
        let matching = self.listed(company, |view| {
            normalise_status(&view.status) == search.status
        });
        page_of(matching, search.page, search.count)
            .iter()
            .map(|(r, view)| r.to_json(view, shape))
            .collect()
    }

    /// A DELETE by the API: cancels a request that was never active, starts deleting a live
    /// connection, and changes nothing on one cancelled or being deleted. `None` if there is no
    /// such connection or it is already deleted.
    pub fn delete(&self, company: &str, id: &str) -> Option<Value> {
        let delay = self.settings().lifecycle.deleting_delay;
        let shape = self.shape();
        let now = Timestamp::now();
        let mut connections = lock(&self.connections);
        let record = connections.get_mut(id).filter(|r| r.company == company)?;
        let view = record.view(now);
        if view.is_deleted() {
            return None;
        }
        match delete_action(&view.status) {
            DeleteAction::Cancel => {
                record.withdraw_pending_change(now);
                record.phase = Phase::Fixed {
                    status: CANCELLED.to_owned(),
                    since: now,
                    error_reason: None,
                }
            }
            DeleteAction::Delete => {
                record.withdraw_pending_change(now);
                record.phase = Phase::Deleting { since: now, delay }
            }
            DeleteAction::Nothing => {}
        }
        let view = record.view(now);
        Some(record.to_json(&view, shape))
    }

    /// Creates connections directly, without validation, "in the past" (a day ago, a
    /// microsecond apart) so they sort before later creates. Returns their ids in order.
    pub fn seed(&self, seed: &Seed) -> Result<Vec<String>, String> {
        let company = self
            .fixtures
            .company(&seed.company)
            .ok_or_else(|| format!("unknown company '{}'", seed.company))?;
        let port = match &seed.port_id {
            Some(id) => self
                .fixtures
                .port(id)
                .filter(|(owner, _)| owner.username == company.username)
                .map(|(_, port)| port)
                .ok_or_else(|| format!("'{id}' is not a port of company '{}'", seed.company))?,
            None => company
                .ports
                .first()
                .ok_or_else(|| format!("company '{}' has no port", seed.company))?,
        };
        let metro = self
            .fixtures
            .metros()
            .iter()
            .find(|m| m.id != port.metro_id);
        let base = Timestamp::now()
            .checked_sub(SEED_AGE)
            .map_err(|err| err.to_string())?;
        let mut connections = lock(&self.connections);
        let mut ids = Vec::with_capacity(seed.count);
        for index in 0..seed.count {
            let offset = Duration::from_micros(u64::try_from(index).unwrap_or(u64::MAX));
            let created_at = after(base, offset);
            let id = new_id(&connections);
            let order = Order {
                name: format!("{}{index}", seed.name_prefix),
                port_id: port.id.clone(),
                dest_port_id: None,
                dest_metro_id: metro.map(|m| m.id.clone()).unwrap_or_default(),
                dest_dcf: metro.and_then(|m| m.first_data_center_facility_id_in_metro.clone()),
                dest_company: "oracle".to_owned(),
                speed: seed.speed,
                payment_type: "invoice".to_owned(),
                duration: Some(1),
                duration_unit: Some("m".to_owned()),
                evergreen: None,
                class_of_service: None,
                src_vlan: None,
                dest_vlan: None,
                discount_code: None,
                src_region_id: port.region_id.clone(),
                dest_region_id: metro.and_then(|m| m.region_ids.first().cloned()),
            };
            let record = Record {
                id: id.clone(),
                company: company.username.clone(),
                company_id: company.id.clone(),
                order,
                src_vlan: random_vlan(),
                dest_vlan: random_vlan(),
                created_at,
                phase: Phase::Fixed {
                    status: seed.status.clone(),
                    since: created_at,
                    error_reason: None,
                },
                changed_at: None,
                change: None,
            };
            connections.insert(id.clone(), record);
            ids.push(id);
        }
        Ok(ids)
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
        if !uses_capacity(status) {
            record.withdraw_pending_change(now);
        }
        record.phase = Phase::Fixed {
            status: status.to_owned(),
            since: now,
            error_reason,
        };
        Ok(admin_json(record, now))
    }

    /// The update call: a lower speed and/or a new name, applied at once. The speed of a
    /// connection to another company can only be reduced here.
    pub fn update(&self, company: &str, id: &str, update: &Update) -> Result<Value, ChangeRefusal> {
        let behaviour = self.settings().behaviour;
        let now = Timestamp::now();
        let mut connections = lock(&self.connections);
        let record = own_live(&connections, company, id, now)?;
        let view = record.view(now);
        if [DELETING, CANCELLED].contains(&normalise_status(&view.status).as_str()) {
            return Err(ChangeRefusal::Invalid(format!(
                "connection {id} cannot change while it is {}",
                view.status
            )));
        }
        let pending = record.pending_speed(now).is_some();
        let speed = match update.speed {
            Some(speed) if plan_speed_update(view.speed, pending, speed, company, id)? => {
                Some(speed)
            }
            _ => None,
        };
        let name = update
            .name
            .clone()
            .filter(|name| *name != record.order.name);
        if let Some(name) = &name
            && behaviour.refuse_duplicate_names
        {
            refuse_name_in_use(&connections, company, name, Some(id), now)?;
        }
        let record = connections.get_mut(id).ok_or(ChangeRefusal::NotFound)?;
        record.settle(now);
        if speed.is_some() || name.is_some() {
            record.changed_at = Some(now);
        }
        if let Some(speed) = speed {
            record.order.speed = speed;
        }
        if let Some(name) = name {
            record.order.name = name;
        }
        Ok(record.to_json(&record.view(now), behaviour.connection_shape))
    }

    /// A change request for `speed` on an ACTIVE connection: a decrease applies at once, an
    /// increase waits for Oracle (approved automatically after the approval delay unless
    /// approval is manual) and reserves its bandwidth meanwhile.
    pub fn request_change(
        &self,
        company: &str,
        id: &str,
        speed: u64,
    ) -> Result<Value, ChangeRefusal> {
        let settings = self.settings();
        let lifecycle = settings.lifecycle;
        let approval = (!lifecycle.manual_approval).then_some(lifecycle.approval_delay);
        let now = Timestamp::now();
        let mut connections = lock(&self.connections);
        let record = own_live(&connections, company, id, now)?;
        let view = record.view(now);
        if normalise_status(&view.status) != ACTIVE {
            return Err(ChangeRefusal::Invalid(format!(
                "a change can only be requested on an ACTIVE connection; connection {id} is {}",
                view.status
            )));
        }
        let room = self.port_room(&connections, record, view.speed, now);
        let plan = plan_change(view.speed, record.pending_speed(now), speed, room.as_ref())?;
        let record = connections.get_mut(id).ok_or(ChangeRefusal::NotFound)?;
        record.settle(now);
        let pending = record.change.as_mut().filter(|c| c.is_pending(now));
        match (plan, pending) {
            (ChangePlan::Decrease, pending) => {
                record.order.speed = speed;
                record.changed_at = Some(now);
                if let Some(change) = pending {
                    change.end(ChangeStatus::Withdrawn, now);
                }
            }
            (ChangePlan::Request, Some(change)) => {
                change.speed = speed;
                change.updated_at = now;
            }
            (ChangePlan::Request, None) => {
                let company_id = record.company_id.clone();
                record.change = Some(ChangeRequest::new(speed, company_id, now, approval));
            }
            (ChangePlan::Unchanged, _) => {}
        }
        Ok(record.to_json(&record.view(now), settings.behaviour.connection_shape))
    }

    /// Withdraws the PENDING change request of a connection: it becomes WITHDRAWN.
    pub fn withdraw_change(&self, company: &str, id: &str) -> Result<Value, ChangeRefusal> {
        let shape = self.shape();
        let now = Timestamp::now();
        let mut connections = lock(&self.connections);
        own_live(&connections, company, id, now)?;
        let record = connections.get_mut(id).ok_or(ChangeRefusal::NotFound)?;
        record.settle(now);
        let change = record
            .change
            .as_mut()
            .filter(|c| c.is_pending(now))
            .ok_or_else(|| format!("no change request is pending on connection {id}"))?;
        change.end(ChangeStatus::Withdrawn, now);
        Ok(record.to_json(&record.view(now), shape))
    }

    /// Room on the port of `record` (at `current` Mbps) for an increase; `None` when the
    /// fixture has no such port.
    fn port_room(
        &self,
        connections: &HashMap<String, Record>,
        record: &Record,
        current: u64,
        now: Timestamp,
    ) -> Option<PortRoom<'_>> {
        let (_, port) = self.fixtures.port(&record.order.port_id)?;
        let others = connections
            .values()
            .filter(|r| r.company == record.company && r.id != record.id);
        let used = usage_on(others, &port.id, now).saturating_add(current);
        Some(PortRoom {
            name: &port.name,
            speed: port.speed_mbps,
            remaining: port_capacity(port).saturating_sub(used),
        })
    }

    /// Oracle's answer to the PENDING change request: approved (the requested speed is in
    /// force) or rejected (the speed stays).
    pub fn decide_change(&self, id: &str, approve: bool) -> Result<Value, AdminRefusal> {
        let now = Timestamp::now();
        let mut connections = lock(&self.connections);
        let record = admin_changeable(&mut connections, id, now, true)?;
        record.settle(now);
        let change = record
            .change
            .as_mut()
            .filter(|c| c.is_pending(now))
            .ok_or(AdminRefusal::NothingPending)?;
        if approve {
            change.end(ChangeStatus::Approved, now);
            record.order.speed = change.speed;
        } else {
            change.end(ChangeStatus::Rejected, now);
        }
        Ok(admin_json(record, now))
    }

    /// Changes the speed and/or name directly, as in the Console Connect portal: no rule is
    /// checked (tests use it to make drift).
    pub fn edit(&self, id: &str, edit: &Update) -> Result<Value, AdminRefusal> {
        let now = Timestamp::now();
        let mut connections = lock(&self.connections);
        let record = admin_changeable(&mut connections, id, now, false)?;
        record.settle(now);
        if let Some(speed) = edit.speed {
            record.order.speed = speed;
        }
        if let Some(name) = &edit.name {
            record.order.name.clone_from(name);
        }
        record.changed_at = Some(now);
        Ok(admin_json(record, now))
    }

    /// The utilization answer for connection `id` of `company`: buckets of the traffic the admin
    /// set (none set: 0 Mbps) while the connection is ACTIVE. `None`: no such connection.
    pub fn utilization(&self, company: &str, id: &str, window: traffic::Window) -> Option<Value> {
        let now = Timestamp::now();
        let active_since = {
            let connections = lock(&self.connections);
            let record = connections.get(id).filter(|r| r.company == company)?;
            let stage = record.stage(now);
            if stage.status == DELETED {
                return None;
            }
            (stage.status == ACTIVE).then_some(stage.since.as_second())
        };
        let level = lock(&self.traffic).get(id).copied().unwrap_or_default();
        *lock(&self.stats)
            .traffic_reads
            .entry(id.to_owned())
            .or_default() += 1;
        Some(traffic::answer(id, window, active_since, level))
    }

    /// Sets the traffic connection `id` carries from now on.
    pub fn set_traffic(&self, id: &str, level: traffic::Level) -> Result<(), AdminRefusal> {
        let now = Timestamp::now();
        let mut connections = lock(&self.connections);
        admin_changeable(&mut connections, id, now, true)?;
        lock(&self.traffic).insert(id.to_owned(), level);
        Ok(())
    }

    /// Counts a request to `endpoint`, and for `company` (the owner of a valid key) too.
    pub fn record_request(&self, endpoint: &str, status: u16, company: Option<&str>) {
        let mut stats = lock(&self.stats);
        *stats
            .counts
            .entry(endpoint.to_owned())
            .or_default()
            .entry(status)
            .or_default() += 1;
        if let Some(company) = company {
            *stats
                .by_company
                .entry(company.to_owned())
                .or_default()
                .entry(endpoint.to_owned())
                .or_default() += 1;
        }
    }

    pub fn record_create(&self, entry: Value) {
        lock(&self.stats).creates.push(entry);
    }

    pub fn record_change(&self, entry: Value) {
        lock(&self.stats).changes.push(entry);
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
        json!({
            "counts": counts,
            "byCompany": stats.by_company,
            "totalRequests": total,
            "creates": stats.creates,
            "changes": stats.changes,
            "trafficReads": stats.traffic_reads,
        })
    }
}

/// A name stays in use until its connection is DELETED or CANCELLED.
fn uses_name(status: &str) -> bool {
    ![DELETED, CANCELLED].contains(&normalise_status(status).as_str())
}

/// The 400 message when another connection of `company` than `except` uses `name`.
fn refuse_name_in_use(
    connections: &HashMap<String, Record>,
    company: &str,
    name: &str,
    except: Option<&str>,
    now: Timestamp,
) -> Result<(), String> {
    let taken = connections.values().any(|r| {
        r.company == company
            && Some(r.id.as_str()) != except
            && r.order.name == name
            && uses_name(&r.view(now).status)
    });
    if taken {
        return Err(format!("Connection name '{name}' is already in use"));
    }
    Ok(())
}

/// Connection `id` of `company` as the day-2 calls find it: 404 like the read when it is
/// unknown, another company's or DELETED.
fn own_live<'c>(
    connections: &'c HashMap<String, Record>,
    company: &str,
    id: &str,
    now: Timestamp,
) -> Result<&'c Record, ChangeRefusal> {
    connections
        .get(id)
        .filter(|r| r.company == company && !r.view(now).is_deleted())
        .ok_or(ChangeRefusal::NotFound)
}

/// A connection an admin call may change: not DELETED and, unless `while_deleting`, not
/// being deleted.
fn admin_changeable<'c>(
    connections: &'c mut HashMap<String, Record>,
    id: &str,
    now: Timestamp,
    while_deleting: bool,
) -> Result<&'c mut Record, AdminRefusal> {
    let record = connections.get_mut(id).ok_or(AdminRefusal::NotFound)?;
    let view = record.view(now);
    if view.is_deleted() {
        return Err(AdminRefusal::Deleted);
    }
    if view.status == DELETING && !while_deleting {
        return Err(AdminRefusal::BeingDeleted);
    }
    Ok(record)
}

/// What a port offers before its connections are subtracted.
pub fn port_capacity(port: &PortConfig) -> u64 {
    port.capacity_remaining_mbps.unwrap_or(port.speed_mbps)
}

/// Mbps taken on `port_id` by the live connections among `records`, pending increases
/// included.
fn usage_on<'r>(records: impl Iterator<Item = &'r Record>, port_id: &str, now: Timestamp) -> u64 {
    records
        .filter(|r| r.order.port_id == port_id && uses_capacity(&r.view(now).status))
        .fold(0, |sum, r| sum.saturating_add(r.reserved_at(now)))
}

fn admin_json(record: &Record, now: Timestamp) -> Value {
    let view = record.view(now);
    let mut json = record.to_json(&view, ConnectionShape::Reference);
    if let Some(object) = json.as_object_mut() {
        object.insert("company".into(), Value::from(record.company.clone()));
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
            company_id: "c".repeat(24),
            order: Order::example(),
            src_vlan: 10,
            dest_vlan: 20,
            created_at,
            phase,
            changed_at: None,
            change: None,
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
    fn statuses_match_with_spaces_underscores_and_any_case() {
        assert_eq!(normalise_status("PENDING ACCEPTANCE"), PENDING_ACCEPTANCE);
        assert_eq!(normalise_status(" pending_acceptance "), PENDING_ACCEPTANCE);
        assert_eq!(normalise_status("active"), ACTIVE);
        assert_eq!(normalise_status(""), "");
    }

    #[test]
    fn delete_cancels_only_requests_never_active() {
        for status in [CREATING, PENDING, "PENDING ACCEPTANCE", PENDING_ACCEPTANCE] {
            assert_eq!(delete_action(status), DeleteAction::Cancel, "{status}");
        }
        for status in [
            ACTIVE, "ACCEPTED", DENIED, "ERROR", "DISABLED", "MANUAL", "WEIRD",
        ] {
            assert_eq!(delete_action(status), DeleteAction::Delete, "{status}");
        }
        for status in [CANCELLED, DELETING] {
            assert_eq!(delete_action(status), DeleteAction::Nothing, "{status}");
        }
    }

    #[test]
    fn pages_are_one_based_and_the_last_may_be_short() {
        let items: Vec<u32> = (0..7).collect();
        assert_eq!(page_of(items.clone(), 1, 3), vec![0, 1, 2]);
        assert_eq!(page_of(items.clone(), 3, 3), vec![6]);
        assert!(page_of(items.clone(), 4, 3).is_empty());
        assert!(page_of(items, u64::MAX, u64::MAX).is_empty());
    }

    #[test]
    fn listing_lag_hides_new_connections_for_a_while() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        assert!(listed(t0, Duration::ZERO, t0));
        assert!(!listed(t0, secs(2), after(t0, secs(1))));
        assert!(listed(t0, secs(2), after(t0, secs(2))));
    }

    #[test]
    fn capacity_is_used_by_live_connections_only() {
        assert!(uses_capacity(ACTIVE) && uses_capacity(DELETING) && uses_capacity("ERROR"));
        assert!(!uses_capacity(DELETED) && !uses_capacity(CANCELLED) && !uses_capacity(DENIED));
        assert!(uses_name(DENIED) && !uses_name(CANCELLED) && !uses_name(DELETED));
    }

    #[test]
    fn shapes_differ_as_documented() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let r = record(
            Phase::Provisioning {
                creating: Duration::ZERO,
                approval: None,
            },
            t0,
        );
        let view = r.view(t0);
        assert_eq!(view.status, PENDING);
        let reference = r.to_json(&view, ConnectionShape::Reference);
        assert_eq!(reference["srcPortId"], "p");
        assert_eq!(reference["destCompany"], "oracle");
        assert_eq!(
            (
                reference["deleted"].as_bool(),
                reference["deletedAt"].is_null()
            ),
            (Some(false), true)
        );
        assert!(reference.get("srcVlanRequest").is_some());
        let spec = r.to_json(&view, ConnectionShape::Spec);
        assert!(spec.get("srcPortId").is_none() && spec.get("destMetroId").is_none());
        assert_eq!(spec["destMetro"], json!([{"id": "m"}]));
        assert_eq!(
            spec["port"],
            json!([{"id": "p"}, {"companyId": "c".repeat(24)}])
        );
        assert_eq!(spec["destCompany"], json!([{"id": ORACLE_COMPANY_ID}]));
        assert_eq!(
            spec["request"],
            json!([{"status": "PENDING"}, {"speed": 100}])
        );
        assert_eq!(
            (spec["srcVlan"].as_u64(), spec["destVlan"].as_u64()),
            (Some(10), Some(20))
        );
        assert!(spec["vlan"].is_array());
        let deleted = View {
            status: DELETED.into(),
            ..view
        };
        let gone = r.to_json(&deleted, ConnectionShape::Spec);
        assert_eq!(gone["request"], json!([]));
        assert_eq!(
            (gone["deleted"].as_bool(), gone["deletedAt"].as_str()),
            (Some(true), Some("2024-01-01T00:00:00.000Z"))
        );
    }

    fn active_since(t0: Timestamp) -> Record {
        record(
            Phase::Fixed {
                status: ACTIVE.into(),
                since: t0,
                error_reason: None,
            },
            t0,
        )
    }

    #[test]
    fn a_pending_increase_reserves_and_its_approval_applies_it() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let mut r = active_since(t0);
        let t1 = after(t0, secs(10));
        r.change = Some(ChangeRequest::new(300, "c".into(), t1, Some(secs(5))));
        let pending = r.view(after(t1, secs(1)));
        assert_eq!(pending.speed, 100);
        assert_eq!(pending.updated_at, t1);
        assert_eq!(r.pending_speed(t1), Some(300));
        assert_eq!(r.reserved_at(t1), 300);
        let approved_at = after(t1, secs(5));
        let approved = r.view(after(t1, secs(60)));
        assert_eq!(approved.speed, 300);
        assert_eq!(approved.updated_at, approved_at);
        assert_eq!(
            approved.change.as_ref().map(|c| c.status),
            Some(ChangeStatus::Approved)
        );
        assert_eq!(r.reserved_at(after(t1, secs(60))), 300);
        // Settling keeps what a read shows, and makes the speed the record's own.
        r.settle(after(t1, secs(60)));
        assert_eq!(r.order.speed, 300);
        assert_eq!(r.view(after(t1, secs(60))), approved);
    }

    #[test]
    fn a_decrease_reserves_nothing_and_leaving_withdraws_the_request() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let mut r = active_since(t0);
        let t1 = after(t0, secs(10));
        r.change = Some(ChangeRequest::new(300, "c".into(), t1, None));
        assert_eq!(r.reserved_at(t1), 300);
        let t2 = after(t1, secs(1));
        r.withdraw_pending_change(t2);
        let view = r.view(t2);
        assert_eq!(
            view.change.map(|c| (c.status, c.since)),
            Some((ChangeStatus::Withdrawn, t2))
        );
        assert_eq!((view.speed, r.reserved_at(t2)), (100, 100));
        assert_eq!(view.updated_at, t2);
    }

    #[test]
    fn both_shapes_show_the_change_request() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let mut r = active_since(t0);
        assert!(
            r.to_json(&r.view(t0), ConnectionShape::Reference)
                .get("request")
                .is_none()
        );
        r.change = Some(ChangeRequest::new(300, "c".into(), t0, None));
        let view = r.view(t0);
        let reference = r.to_json(&view, ConnectionShape::Reference);
        assert_eq!(reference["request"]["status"], "PENDING");
        assert_eq!(reference["request"]["speed"], 300);
        assert_eq!(reference["speed"]["value"], 100);
        let spec = r.to_json(&view, ConnectionShape::Spec);
        assert_eq!(spec["request"][0], json!({"status": "PENDING"}));
        assert_eq!(spec["request"][2], json!({"speed": 300}));
    }

    #[test]
    fn timestamps_have_milliseconds() {
        let t: Timestamp = "2024-08-19T01:09:16.376123Z".parse().unwrap();
        assert_eq!(timestamp(t), "2024-08-19T01:09:16.376Z");
    }
}
