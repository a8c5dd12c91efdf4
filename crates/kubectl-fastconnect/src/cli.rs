//! The command line. Flags that every command shares are global, so that they may come before or
//! after the command (`kubectl fastconnect -n net ports` and `kubectl fastconnect ports -n net`).

use clap::{Args, Parser, Subcommand, ValueEnum};
use fastconnect_operator::{consoleconnect::DEFAULT_BASE_URL, crd};
use url::Url;

/// Console Connect ports and Oracle metros, FastConnectConnections checked before they are
/// applied, and where each one stands.
///
/// Uses your kubeconfig and RBAC. The commands that talk to Console Connect read the API key from
/// the Secret named by --secret (key --key) and never print it.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl fastconnect",
    bin_name = "kubectl fastconnect",
    version
)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// Namespace of the Secret and of the resources; default: the kubeconfig context's.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use; default: the current context.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path of the kubeconfig; default: $KUBECONFIG, else ~/.kube/config.
    #[arg(long, global = true)]
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// Where the commands that talk to Console Connect find it and the key.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// Name of the Secret holding the Console Connect API key, in --namespace.
    #[arg(long, value_name = "NAME")]
    pub secret: String,
    /// Key of the API key in the Secret (the default of spec.credentials.apiKeySecretRef.key).
    #[arg(long, value_name = "KEY", default_value = "apiKey")]
    pub key: String,
    /// Console Connect API base URL (the operator's default).
    #[arg(long, value_name = "URL", default_value = DEFAULT_BASE_URL)]
    pub api_url: Url,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Your company's Console Connect ports: name, id, metro, speed, remaining capacity, status.
    Ports {
        #[command(flatten)]
        api: ApiArgs,
        /// Your Console Connect company username (spec.companyUsername).
        #[arg(long)]
        company: String,
    },
    /// Oracle's metros with their layer 2 and ready flags; with --port (or --port-id), whether
    /// each can be ordered from that port, and if not, the operator's reason why.
    Metros {
        #[command(flatten)]
        api: ApiArgs,
        /// Your Console Connect company username; needed with --port or --port-id.
        #[arg(long)]
        company: Option<String>,
        /// Show which metros are reachable from the port with this name.
        #[arg(long, conflicts_with = "port_id", requires = "company")]
        port: Option<String>,
        /// Show which metros are reachable from the port with this id.
        #[arg(long, requires = "company")]
        port_id: Option<String>,
    },
    /// Prints a FastConnectConnection after resolving its port, metro and speed against Console
    /// Connect exactly as the operator would, so that a mistake shows before anything is applied.
    /// Pipe it to `kubectl apply -f -`.
    New(Box<NewArgs>),
    /// FastConnectConnections with their phase, the time in that phase and what to do next.
    ///
    /// SINCE is the time since status.phaseSince. Resources last written by an operator that did
    /// not record it show the time since their newest condition change instead, marked `~`, or
    /// `-` when they have no conditions either.
    Status {
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// Name of the FastConnectConnection.
    pub name: String,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Your Console Connect company username (spec.companyUsername).
    #[arg(long)]
    pub company: String,
    /// The source port, by name (spec.sourcePort.name).
    #[arg(long, required_unless_present = "port_id", conflicts_with = "port_id")]
    pub port: Option<String>,
    /// The source port, by id (spec.sourcePort.id).
    #[arg(long)]
    pub port_id: Option<String>,
    /// The Oracle metro, by code or name, in any case (spec.destination.metro).
    #[arg(
        long,
        required_unless_present = "metro_id",
        conflicts_with = "metro_id"
    )]
    pub metro: Option<String>,
    /// The Oracle metro, by id (spec.destination.metroId).
    #[arg(long)]
    pub metro_id: Option<String>,
    /// Bandwidth in Mbps (spec.speedMbps).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=400_000))]
    pub speed: u32,
    /// Name of the Secret holding the Oracle virtual circuit OCID, in --namespace.
    #[arg(long, value_name = "NAME")]
    pub ocid_secret: String,
    /// Key of the OCID in that Secret.
    #[arg(long, value_name = "KEY", default_value = "ocid")]
    pub ocid_key: String,
    /// Contract term: a number and d, w, m or y (days, weeks, months, years).
    #[arg(long, default_value = "1m", value_parser = parse_term)]
    pub term: crd::Term,
    /// Class of service; Console Connect picks one when omitted.
    #[arg(long, value_enum, ignore_case = true)]
    pub class_of_service: Option<ClassOfService>,
    /// Renew the contract automatically at the end of the term.
    #[arg(long)]
    pub evergreen: bool,
    /// VLAN to request on your port (1-4094).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4094))]
    pub source_vlan: Option<u16>,
    /// VLAN to request on the Oracle side (1-4094).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4094))]
    pub destination_vlan: Option<u16>,
    /// Destination port id, passed to Console Connect as destPortId.
    #[arg(long)]
    pub dest_port_id: Option<String>,
    /// The name of the connection in Console Connect; default: <namespace>.<name>.
    #[arg(long)]
    pub connection_name: Option<String>,
    /// A Console Connect discount code.
    #[arg(long)]
    pub discount_code: Option<String>,
    /// What deleting the resource does to the connection.
    #[arg(long, value_enum, default_value_t = DeletionPolicy::Delete)]
    pub deletion_policy: DeletionPolicy,
}

/// The CRD's classes of service, spelled as in the spec.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "UPPER")]
pub enum ClassOfService {
    Gold,
    Silverplus,
    Silver,
    Bronze,
}

impl From<ClassOfService> for crd::ClassOfService {
    fn from(class: ClassOfService) -> Self {
        match class {
            ClassOfService::Gold => crd::ClassOfService::Gold,
            ClassOfService::Silverplus => crd::ClassOfService::Silverplus,
            ClassOfService::Silver => crd::ClassOfService::Silver,
            ClassOfService::Bronze => crd::ClassOfService::Bronze,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "verbatim")]
pub enum DeletionPolicy {
    /// Deleting the resource disconnects the connection.
    Delete,
    /// Deleting the resource leaves the connection running.
    Orphan,
}

impl From<DeletionPolicy> for crd::DeletionPolicy {
    fn from(policy: DeletionPolicy) -> Self {
        match policy {
            DeletionPolicy::Delete => crd::DeletionPolicy::Delete,
            DeletionPolicy::Orphan => crd::DeletionPolicy::Orphan,
        }
    }
}

/// `12m` → 12 months, within the CRD's range of 1-1000.
fn parse_term(text: &str) -> Result<crd::Term, String> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at_checked(split).unwrap_or((text, ""));
    let unit = match unit {
        "d" => crd::TermUnit::Days,
        "w" => crd::TermUnit::Weeks,
        "m" => crd::TermUnit::Months,
        "y" => crd::TermUnit::Years,
        _ => return Err(format!("{text:?} must end in d, w, m or y, as in 12m")),
    };
    match number.parse::<u32>() {
        Ok(duration @ 1..=1000) => Ok(crd::Term { duration, unit }),
        _ => Err(format!(
            "{text:?} needs a number from 1 to 1000 before the unit, as in 12m"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn terms_read_like_the_crd_writes_them() {
        let term = parse_term("12m").unwrap();
        assert_eq!((term.duration, term.unit), (12, crd::TermUnit::Months));
        assert_eq!(parse_term("1y").unwrap().unit, crd::TermUnit::Years);
        for bad in ["12", "m", "0m", "1001d", "12x", "-1w", ""] {
            assert!(parse_term(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        for args in [
            ["kubectl-fastconnect", "-n", "net", "status"],
            ["kubectl-fastconnect", "status", "-n", "net"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(cli.kube.namespace.as_deref(), Some("net"));
        }
    }

    #[test]
    fn new_needs_a_port_and_a_metro_but_only_one_of_each_form() {
        let base = [
            "kubectl-fastconnect",
            "new",
            "hk",
            "--secret",
            "cc",
            "--company",
            "acme",
            "--ocid-secret",
            "vc",
        ];
        let with = |extra: &[&str]| Cli::try_parse_from(base.iter().chain(extra));
        assert!(with(&["--speed", "100", "--port", "P", "--metro", "HKG"]).is_ok());
        assert!(with(&["--speed", "100", "--port-id", "p1", "--metro-id", "m1"]).is_ok());
        assert!(with(&["--speed", "100", "--metro", "HKG"]).is_err());
        assert!(with(&["--speed", "100", "--port", "P"]).is_err());
        assert!(
            with(&[
                "--speed",
                "100",
                "--port",
                "P",
                "--port-id",
                "p",
                "--metro",
                "H"
            ])
            .is_err()
        );
        assert!(with(&["--speed", "0", "--port", "P", "--metro", "HKG"]).is_err());
        assert!(with(&["--port", "P", "--metro", "HKG"]).is_err());
    }
}
