//! `provenant emit`: send events from a CI pipeline or a shell.
//!
//! Every event is validated before anything is sent; one invalid event means nothing is sent
//! and the exit code is 1. Exit 3 means the destination could not be reached in time (with
//! `--spool-dir`, events are spooled instead and the next `emit` with the same directory
//! delivers them first).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use provenant_producer::ci::{CiContext, detect_from_env};
use provenant_producer::{Emitter, EmitterConfig, HttpTransport, LogTransport, Transport};
use provenant_schemas::{
    Approval, Artifact, Build, Data, Dataset, Decision, Deploy, Event, EventData, Job, Limits,
    RunState, Runtime,
};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  # in a GitHub Actions job, after the build:
  provenant emit --endpoint https://provenant.internal --token \"$PROVENANT_TOKEN\" \\
      build --from-ci
  provenant emit --endpoint https://provenant.internal artifact --from-ci \\
      --artifact-digest sha256:9b2f… --name ghcr.io/acme/shop
  # check what would be sent, without sending:
  provenant emit --dry-run deploy --deploy-id d-42 --artifact-digest sha256:9b2f… \\
      --environment production --service shop")]
pub(crate) struct EmitArgs {
    /// Provenant HTTP endpoint (e.g. http://127.0.0.1:8080); events go to POST /v1/events.
    #[arg(long, global = true, env = "PROVENANT_ENDPOINT")]
    endpoint: Option<String>,

    /// Kafka bootstrap servers (HOST:PORT,…): write to prov.raw directly instead of HTTP.
    #[arg(
        long,
        global = true,
        env = "PROVENANT_BROKERS",
        conflicts_with = "endpoint"
    )]
    brokers: Option<String>,

    /// Bearer token for the endpoint.
    #[arg(long, global = true, env = "PROVENANT_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// CloudEvents `source` of the events (default: the CI pipeline with --from-ci, else
    /// `urn:provenant:cli`).
    #[arg(long, global = true)]
    source: Option<String>,

    /// CloudEvents `id` (default: a random UUID).
    #[arg(long, global = true)]
    id: Option<String>,

    /// Fill commit, branch, build id, pipeline URL and actor from the CI system's variables
    /// (GitHub Actions, GitLab CI, Jenkins, Buildkite, CircleCI). Explicit flags win.
    #[arg(long, global = true)]
    from_ci: bool,

    /// Spool events here when the destination is unreachable; the next `emit` with the same
    /// directory delivers them first.
    #[arg(long, global = true, value_name = "DIR")]
    spool_dir: Option<PathBuf>,

    /// Give up delivering after this many seconds (exit 3) when there is no spool directory.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECONDS")]
    timeout: u64,

    /// Print the events as CloudEvents JSON (NDJSON) and send nothing.
    #[arg(long, global = true)]
    dry_run: bool,

    /// Free-text annotation KEY=VALUE on the event (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE", global = true)]
    annotations: Vec<String>,

    /// Send the events in FILE (or stdin with `-`): one event, a JSON array or NDJSON of
    /// CloudEvents, CDEvents or OpenLineage RunEvents. All must be valid or nothing is sent.
    #[arg(long, value_name = "FILE|-", conflicts_with = "id")]
    json: Option<PathBuf>,

    /// How to read --json input, as an HTTP content type: application/cloudevents+json (one
    /// event), application/cloudevents-batch+json (an array), application/x-ndjson. Default:
    /// guessed from the first bytes.
    #[arg(long, value_name = "TYPE", requires = "json")]
    content_type: Option<String>,

    #[command(subcommand)]
    kind: Option<KindArgs>,
}

#[derive(Debug, Subcommand)]
enum KindArgs {
    /// A CI build of a commit.
    Build {
        #[arg(long)]
        commit_sha: Option<String>,
        #[arg(long)]
        build_id: Option<String>,
        #[arg(long)]
        branch: Option<String>,
        /// RFC 3339 (default: now).
        #[arg(long)]
        build_timestamp: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        pipeline_url: Option<String>,
        #[arg(long)]
        repo_url: Option<String>,
        #[arg(long)]
        artifact_digest: Option<String>,
        #[arg(long)]
        signature: Option<String>,
    },
    /// An artifact published with a content digest.
    Artifact {
        #[arg(long)]
        artifact_digest: String,
        #[arg(long)]
        build_id: Option<String>,
        #[arg(long)]
        commit_sha: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        signature: Option<String>,
    },
    /// An artifact deployed as a service to an environment.
    Deploy {
        #[arg(long)]
        deploy_id: String,
        #[arg(long)]
        artifact_digest: String,
        #[arg(long)]
        environment: String,
        #[arg(long)]
        service: String,
        /// RFC 3339 (default: now).
        #[arg(long)]
        deploy_timestamp: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        config_hash: Option<String>,
        #[arg(long)]
        previous_deploy_id: Option<String>,
        #[arg(long)]
        pipeline_url: Option<String>,
    },
    /// A running instance reporting what it runs.
    Runtime {
        #[arg(long)]
        instance_id: String,
        #[arg(long)]
        service: String,
        #[arg(long)]
        environment: String,
        #[arg(long)]
        deploy_id: Option<String>,
        #[arg(long)]
        artifact_digest: Option<String>,
        #[arg(long)]
        trace_id: Option<String>,
        #[arg(long)]
        message: Option<String>,
    },
    /// A data job run reading and writing datasets.
    Data {
        #[arg(long)]
        job_namespace: String,
        #[arg(long)]
        job_name: String,
        /// A UUID (default: a new random one).
        #[arg(long)]
        run_id: Option<String>,
        /// START, RUNNING, COMPLETE, FAIL, ABORT or OTHER.
        #[arg(long, default_value = "COMPLETE")]
        event_type: String,
        /// Input dataset NAMESPACE/NAME (repeatable; the name is after the last '/').
        #[arg(long = "input", value_name = "NAMESPACE/NAME")]
        inputs: Vec<String>,
        /// Output dataset NAMESPACE/NAME (repeatable).
        #[arg(long = "output", value_name = "NAMESPACE/NAME")]
        outputs: Vec<String>,
    },
    /// An approval decision for a deployment or an artifact.
    Approval {
        #[arg(long)]
        approval_id: String,
        #[arg(long)]
        deploy_id: Option<String>,
        #[arg(long)]
        artifact_digest: Option<String>,
        #[arg(long)]
        environment: String,
        /// approved or rejected.
        #[arg(long)]
        decision: String,
        #[arg(long)]
        approver: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        policy: Option<String>,
    },
}

pub(crate) fn run(args: EmitArgs) -> Result<ExitCode> {
    let ci = if args.from_ci {
        Some(detect_from_env().context(
            "--from-ci: no CI system detected (looked for GITHUB_ACTIONS, GITLAB_CI, JENKINS_URL, BUILDKITE, CIRCLECI)",
        )?)
    } else {
        None
    };
    let events = match (&args.json, &args.kind) {
        (Some(path), None) => match read_json_events(path, args.content_type.as_deref())? {
            Ok(events) => events,
            Err(errors) => {
                for e in &errors {
                    eprintln!("error: {e}");
                }
                eprintln!("{} invalid event(s); nothing was sent", errors.len());
                return Ok(ExitCode::from(1));
            }
        },
        (None, Some(kind)) => match typed_event(&args, kind, ci.as_ref()) {
            Ok(e) => vec![e],
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::from(1));
            }
        },
        _ => bail!(
            "give either --json FILE|- or one event kind (build, artifact, deploy, runtime, data, approval)"
        ),
    };
    for e in &events {
        if let Err(err) = e.validate(&Limits::DEFAULT) {
            eprintln!("error: {err}; nothing was sent");
            return Ok(ExitCode::from(1));
        }
    }
    if args.dry_run {
        for e in &events {
            println!("{}", e.to_json_value());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if let Some(brokers) = &args.brokers {
        let log =
            provenant_kafka::KafkaLog::new(provenant_kafka::KafkaConfig::new(brokers.clone()))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        let transport = LogTransport::new(log, provenant_log::RAW_TOPIC);
        let destination = format!("Kafka {brokers}");
        return runtime.block_on(send(&args, transport, events, &destination));
    }
    let endpoint = args.endpoint.clone().context(
        "say where to send: --endpoint URL (or PROVENANT_ENDPOINT), --brokers HOST:PORT, or --dry-run",
    )?;
    let transport = HttpTransport::new(&endpoint, args.token.clone(), Duration::from_secs(10))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    runtime.block_on(send(&args, transport, events, &endpoint))
}

async fn send<T: Transport>(
    args: &EmitArgs,
    transport: T,
    events: Vec<Event>,
    destination: &str,
) -> Result<ExitCode> {
    let n = events.len();
    let config = EmitterConfig {
        spool_dir: args.spool_dir.clone(),
        ..EmitterConfig::default()
    };
    let emitter = Emitter::start(config, transport)?;
    for e in events {
        emitter.emit(e)?;
    }
    let done = tokio::time::timeout(Duration::from_secs(args.timeout), emitter.shutdown()).await;
    let stats = emitter.stats();
    match done {
        Ok(Ok(())) if stats.delivered >= n as u64 && stats.rejected == 0 => {
            eprintln!("sent {n} event(s) to {destination}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(())) if stats.rejected > 0 => {
            eprintln!("error: {destination} rejected {} event(s)", stats.rejected);
            Ok(ExitCode::from(1))
        }
        Ok(Ok(())) => {
            let dir = args
                .spool_dir
                .as_ref()
                .map_or_else(String::new, |d| d.display().to_string());
            eprintln!(
                "warning: {destination} is unreachable; {} event(s) spooled in {dir}; the next `provenant emit --spool-dir {dir}` delivers them first",
                stats.spooled.saturating_sub(stats.replayed)
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => bail!("{e}"),
        Err(_) => {
            eprintln!(
                "error: could not deliver to {destination} within {} s; nothing is known to be stored (use --spool-dir to keep events until it is back)",
                args.timeout
            );
            Ok(ExitCode::from(3))
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn annotations(items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| "--annotation must be KEY=VALUE".to_owned())
        })
        .collect()
}

fn dataset(spec: &str) -> Result<Dataset> {
    let (namespace, name) = spec
        .rsplit_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
        .with_context(|| "datasets are NAMESPACE/NAME".to_owned())?;
    Ok(Dataset {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        ..Dataset::default()
    })
}

fn pick(explicit: &Option<String>, from_ci: Option<&Option<String>>) -> Option<String> {
    explicit.clone().or_else(|| from_ci.and_then(Clone::clone))
}

/// Reads and decodes `--json` input: every event, or every error.
fn read_json_events(
    path: &std::path::Path,
    content_type: Option<&str>,
) -> Result<std::result::Result<Vec<Event>, Vec<provenant_schemas::ItemError>>> {
    let bytes = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading stdin")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!("{} holds no events", path.display());
    }
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for item in provenant_schemas::decode(&bytes, content_type, &Limits::DEFAULT) {
        match item {
            Ok(e) => events.push(e),
            Err(e) => errors.push(e),
        }
    }
    Ok(if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    })
}

/// Builds the event a typed subcommand describes.
fn typed_event(args: &EmitArgs, kind: &KindArgs, ci: Option<&CiContext>) -> Result<Event> {
    let annotations = annotations(&args.annotations)?;
    let c = |f: fn(&CiContext) -> &Option<String>| ci.map(f);
    let data = match kind {
        KindArgs::Build {
            commit_sha,
            build_id,
            branch,
            build_timestamp,
            actor,
            pipeline_url,
            repo_url,
            artifact_digest,
            signature,
        } => EventData::Build(Build {
            commit_sha: pick(commit_sha, c(|c| &c.commit_sha))
                .context("build needs --commit-sha (or --from-ci)")?,
            branch: pick(branch, c(|c| &c.branch)),
            build_id: pick(build_id, c(|c| &c.build_id))
                .context("build needs --build-id (or --from-ci)")?,
            build_timestamp: build_timestamp.clone().unwrap_or_else(now),
            actor: pick(actor, c(|c| &c.actor)),
            pipeline_url: pick(pipeline_url, c(|c| &c.pipeline_url)),
            repo_url: pick(repo_url, c(|c| &c.repo_url)),
            artifact_digest: artifact_digest.clone(),
            signature: signature.clone(),
            annotations,
        }),
        KindArgs::Artifact {
            artifact_digest,
            build_id,
            commit_sha,
            name,
            signature,
        } => EventData::Artifact(Artifact {
            artifact_digest: artifact_digest.clone(),
            build_id: pick(build_id, c(|c| &c.build_id)),
            commit_sha: pick(commit_sha, c(|c| &c.commit_sha)),
            name: name.clone(),
            signature: signature.clone(),
            annotations,
        }),
        KindArgs::Deploy {
            deploy_id,
            artifact_digest,
            environment,
            service,
            deploy_timestamp,
            actor,
            config_hash,
            previous_deploy_id,
            pipeline_url,
        } => EventData::Deploy(Deploy {
            deploy_id: deploy_id.clone(),
            artifact_digest: artifact_digest.clone(),
            environment: environment.clone(),
            service: service.clone(),
            deploy_timestamp: deploy_timestamp.clone().unwrap_or_else(now),
            actor: pick(actor, c(|c| &c.actor)),
            config_hash: config_hash.clone(),
            previous_deploy_id: previous_deploy_id.clone(),
            pipeline_url: pick(pipeline_url, c(|c| &c.pipeline_url)),
            annotations,
        }),
        KindArgs::Runtime {
            instance_id,
            service,
            environment,
            deploy_id,
            artifact_digest,
            trace_id,
            message,
        } => EventData::Runtime(Runtime {
            instance_id: instance_id.clone(),
            service: service.clone(),
            environment: environment.clone(),
            deploy_id: deploy_id.clone(),
            artifact_digest: artifact_digest.clone(),
            trace_id: trace_id.clone(),
            message: message.clone(),
            annotations,
        }),
        KindArgs::Data {
            job_namespace,
            job_name,
            run_id,
            event_type,
            inputs,
            outputs,
        } => EventData::Data(Data {
            job: Job {
                namespace: job_namespace.clone(),
                name: job_name.clone(),
            },
            run_id: run_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            event_type: RunState::ALL
                .into_iter()
                .find(|s| s.as_str() == event_type.to_ascii_uppercase())
                .context("--event-type must be START, RUNNING, COMPLETE, FAIL, ABORT or OTHER")?,
            inputs: inputs.iter().map(|s| dataset(s)).collect::<Result<_>>()?,
            outputs: outputs.iter().map(|s| dataset(s)).collect::<Result<_>>()?,
            annotations,
        }),
        KindArgs::Approval {
            approval_id,
            deploy_id,
            artifact_digest,
            environment,
            decision,
            approver,
            reason,
            policy,
        } => EventData::Approval(Approval {
            approval_id: approval_id.clone(),
            deploy_id: deploy_id.clone(),
            artifact_digest: artifact_digest.clone(),
            environment: environment.clone(),
            decision: match decision.as_str() {
                "approved" => Decision::Approved,
                "rejected" => Decision::Rejected,
                _ => bail!("--decision must be approved or rejected"),
            },
            approver: approver.clone(),
            reason: reason.clone(),
            policy: policy.clone(),
            annotations,
        }),
    };
    let source = args
        .source
        .clone()
        .or_else(|| ci.and_then(|c| c.source.clone()))
        .unwrap_or_else(|| "urn:provenant:cli".to_owned());
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut event = Event::new(source, id, data);
    event.time = Some(now());
    Ok(event)
}
