//! The commands, each a thin call into the platform use cases.

use crate::output;
use crate::{ApiKeysCmd, Cli, Command, CompaniesCmd, ConnectionsCmd, IntegrationsCmd, KeysCmd, WebhooksCmd};
use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::io::Read;
use tributary_api::compose::{self, Composition, MasterKey};
use tributary_api::config::{Settings, decode_master_key};
use tributary_api::crypto::AesGcmCipher;
use tributary_api::http::dto::{ApiKeyDto, CompanyDto, ConnectionDto, IntegrationDto, iso};
use tributary_api::store::Store;
use tributary_domain::ids::{ApiKeyId, CompanyId, ConnectionId};
use tributary_domain::model::company::{CompanyFields, QUERY_SCHEMA};
use tributary_domain::model::connection::ConnectionStatus;
use tributary_domain::model::integration::Scope;
use tributary_domain::paging::ListQuery;
use tributary_domain::ports::SecretCipher;
use tributary_domain::service::{IntegrationUpdate, Platform};

struct Ctx {
    settings: Settings,
    store: Store,
    platform: Platform,
    json: bool,
}

async fn context(cli: &Cli, need_master_key: bool) -> anyhow::Result<Ctx> {
    let settings = Settings::load(cli.config.as_deref())?;
    let master_key = if need_master_key { MasterKey::Required } else { MasterKey::IfConfigured };
    let Composition { settings, store, platform } = Composition::open(settings, master_key).await?;
    Ok(Ctx { settings, store, platform, json: cli.json })
}

fn secret_arg(value: String, what: &str) -> anyhow::Result<SecretString> {
    if value == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).with_context(|| format!("cannot read the {what} from standard input"))?;
        let s = s.trim().to_owned();
        if s.is_empty() {
            bail!("no {what} on standard input");
        }
        Ok(SecretString::from(s))
    } else {
        Ok(SecretString::from(value))
    }
}

fn parse_id<T: std::str::FromStr>(s: &str, what: &str) -> anyhow::Result<T> {
    s.parse().map_err(|_| anyhow!("'{s}' is not a valid {what} (expected a UUID)"))
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Keys(KeysCmd::Generate) => {
            let key = AesGcmCipher::generate_key();
            if cli.json {
                output::json(&serde_json::json!({ "master_key": key }));
            } else {
                println!("{key}");
            }
            return Ok(());
        }
        #[cfg(feature = "demo")]
        Command::Demo { listen, database } => return crate::demo::run(listen, database).await,
        _ => {}
    }
    let need_key = matches!(
        cli.command,
        Command::Keys(_)
            | Command::Connections(ConnectionsCmd::Unlink { .. } | ConnectionsCmd::Delete { .. })
            | Command::Webhooks(WebhooksCmd::Create { .. } | WebhooksCmd::Secret { .. })
            | Command::Sync { .. }
    ) || matches!(&cli.command, Command::Integrations(IntegrationsCmd::Set { secret_key, webhook_secret, .. }) if secret_key.is_some() || webhook_secret.is_some());
    let ctx = context(&cli, need_key).await?;
    let result = dispatch(&cli, &ctx).await;
    ctx.store.close().await;
    result
}

async fn dispatch(cli: &Cli, ctx: &Ctx) -> anyhow::Result<()> {
    let p = &ctx.platform;
    let public = ctx.settings.public_base();
    match &cli.command {
        Command::Migrate => {
            // Store::open has applied every pending migration.
            if ctx.json {
                output::json(&serde_json::json!({"migrated": true}));
            } else {
                println!("database {} is up to date", tributary_api::config::redact_url(&ctx.settings.database_url));
            }
        }
        Command::ApiKeys(ApiKeysCmd::Create { name }) => {
            let key = tributary_api::generate_api_key();
            let record = p.api_keys().create(name.clone(), &key).await?;
            let value = key.expose_secret().to_owned();
            if ctx.json {
                output::json(
                    &serde_json::json!({"id": record.id.to_string(), "key": value, "name": record.name, "createdDate": iso(record.created)}),
                );
            } else {
                output::fields(&[("id", record.id.to_string()), ("key", value.clone()), ("name", record.name.clone().unwrap_or_default())]);
                println!("\nThis is the only time the key is shown. Send it as: Authorization: Basic {}", base64_of(&value));
            }
        }
        Command::ApiKeys(ApiKeysCmd::List) => {
            let keys = p.api_keys().list().await?;
            if ctx.json {
                output::json(&keys.into_iter().map(|k| ApiKeyDto::new(k, None)).collect::<Vec<_>>());
            } else {
                output::table(
                    &["id", "name", "created"],
                    keys.into_iter().map(|k| vec![k.id.to_string(), k.name.unwrap_or_default(), iso(k.created)]).collect(),
                );
            }
        }
        Command::ApiKeys(ApiKeysCmd::Revoke { id, force }) => {
            let id: ApiKeyId = parse_id(id, "API key id")?;
            p.api_keys().delete(id, *force).await.map_err(|e| match e {
                tributary_domain::DomainError::Conflict(m) => anyhow!("{m} Use --force to revoke it anyway."),
                e => e.into(),
            })?;
            report(ctx.json, serde_json::json!({"revoked": id.to_string()}), &format!("revoked API key {id}"));
        }
        Command::Webhooks(cmd) => webhooks(p, cmd, ctx.json).await?,
        Command::Integrations(IntegrationsCmd::List) => {
            let list = p.integrations().list().await?;
            if ctx.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|i| {
                        let mut d = serde_json::to_value(IntegrationDto::new(i, &public)).unwrap_or_default();
                        d["clientId"] = serde_json::json!(i.settings.client_id);
                        d["secretKeySet"] = serde_json::json!(i.settings.secret_key.is_some());
                        d["webhookSecretSet"] = serde_json::json!(i.settings.webhook_secret.is_some());
                        d["scope"] = serde_json::json!(i.settings.scope.as_str());
                        d["secretKeyRefused"] = serde_json::json!(
                            i.settings.key_refused.as_ref().map(|r| serde_json::json!({"at": r.at.to_rfc3339(), "message": r.message}))
                        );
                        d
                    })
                    .collect();
                output::json(&v);
            } else {
                output::table(
                    &["key", "name", "mode", "enabled", "client id", "secret key", "webhook secret", "scope"],
                    list.iter()
                        .map(|i| {
                            vec![
                                i.definition.key.to_owned(),
                                i.definition.name.to_owned(),
                                format!("{:?}", i.definition.mode).to_lowercase(),
                                i.settings.enabled.to_string(),
                                i.settings.client_id.clone().unwrap_or_else(|| "-".into()),
                                match (&i.settings.secret_key, &i.settings.key_refused) {
                                    (Some(_), Some(r)) => format!("REFUSED by Stripe at {}", r.at.format("%Y-%m-%d %H:%M:%SZ")),
                                    (Some(_), None) => "set (encrypted)".into(),
                                    (None, _) => "-".into(),
                                },
                                if i.settings.webhook_secret.is_some() { "set (encrypted)".into() } else { "-".into() },
                                i.settings.scope.to_string(),
                            ]
                        })
                        .collect(),
                );
            }
        }
        Command::Integrations(IntegrationsCmd::Set { key, client_id, secret_key, webhook_secret, scope }) => {
            let update = IntegrationUpdate {
                client_id: client_id.clone(),
                secret_key: secret_key.clone().map(|s| secret_arg(s, "secret key")).transpose()?,
                webhook_secret: webhook_secret.clone().map(|s| secret_arg(s, "webhook secret")).transpose()?,
                scope: scope.as_deref().map(|s| s.parse::<Scope>().map_err(|e| anyhow!(e))).transpose()?,
            };
            let i = p.integrations().update(key, update).await?;
            let hint = if i.settings.enabled || !i.settings.is_configured() {
                String::new()
            } else {
                format!("\nEnable it with: tributary integrations enable {key}")
            };
            report(
                ctx.json,
                serde_json::json!({"key": key, "enabled": i.settings.enabled, "configured": i.settings.is_configured()}),
                &format!("updated {key} ({}){hint}", i.definition.name),
            );
        }
        Command::Integrations(IntegrationsCmd::Enable { key }) | Command::Integrations(IntegrationsCmd::Disable { key }) => {
            let enable = matches!(cli.command, Command::Integrations(IntegrationsCmd::Enable { .. }));
            let i = p.integrations().set_enabled(key, enable).await?;
            report(
                ctx.json,
                serde_json::json!({"key": key, "enabled": i.settings.enabled}),
                &format!("{key} ({}) {}", i.definition.name, if enable { "enabled" } else { "disabled" }),
            );
        }
        Command::Companies(CompaniesCmd::Create { name, description, tags }) => {
            let mut map = BTreeMap::new();
            for t in tags {
                let (k, v) = t.split_once('=').ok_or_else(|| anyhow!("--tag must be KEY=VALUE, got '{t}'"))?;
                map.insert(k.to_owned(), v.to_owned());
            }
            let view = p.companies().create(CompanyFields::new(name, description.clone(), map)?).await?;
            let dto = CompanyDto::new(view, &public);
            if ctx.json {
                output::json(&dto);
            } else {
                output::fields(&[("id", dto.id.to_string()), ("name", dto.name.clone()), ("link", dto.redirect.clone())]);
            }
        }
        Command::Companies(CompaniesCmd::List { query, order_by, page, page_size }) => {
            let q = ListQuery::from_params(&QUERY_SCHEMA, Some(*page), Some(*page_size), query.as_deref(), order_by.as_deref())?;
            let page = p.companies().list(q, None).await?;
            let total = page.total;
            let items: Vec<CompanyDto> = page.items.into_iter().map(|c| CompanyDto::new(c, &public)).collect();
            if ctx.json {
                output::json(&items);
            } else {
                output::table(
                    &["id", "name", "connections", "created", "tags"],
                    items
                        .iter()
                        .map(|c| {
                            vec![
                                c.id.to_string(),
                                c.name.clone(),
                                c.data_connections
                                    .iter()
                                    .map(|d| format!("{} {}", d.integration_key, d.status))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                c.created.clone(),
                                c.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
                            ]
                        })
                        .collect(),
                );
                println!("{} of {total} companies", items.len());
            }
        }
        Command::Companies(CompaniesCmd::Show { id }) => {
            let view = p.companies().get(parse_id::<CompanyId>(id, "company id")?).await?;
            let dto = CompanyDto::new(view, &public);
            if ctx.json {
                output::json(&dto);
            } else {
                output::fields(&[
                    ("id", dto.id.to_string()),
                    ("name", dto.name.clone()),
                    ("description", dto.description.clone().unwrap_or_default()),
                    ("created", dto.created.clone()),
                    ("link", dto.redirect.clone()),
                    ("tags", dto.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")),
                ]);
                if !dto.data_connections.is_empty() {
                    println!();
                    connection_table(&dto.data_connections);
                }
            }
        }
        Command::Companies(CompaniesCmd::Delete { id }) => {
            let id: CompanyId = parse_id(id, "company id")?;
            p.companies().delete(id).await?;
            report(
                ctx.json,
                serde_json::json!({"deleted": id.to_string()}),
                &format!("deleted company {id} with its connections and data"),
            );
        }
        Command::Connections(ConnectionsCmd::Create { company_id, platform_key }) => {
            let c = p.connections().create(parse_id(company_id, "company id")?, platform_key).await?;
            let dto = ConnectionDto::new(c, &public);
            if ctx.json {
                output::json(&dto);
            } else {
                output::fields(&[("id", dto.id.to_string()), ("status", dto.status.clone()), ("linkUrl", dto.link_url.clone())]);
            }
        }
        Command::Connections(ConnectionsCmd::List { company_id }) => {
            let page = p
                .connections()
                .list(
                    parse_id(company_id, "company id")?,
                    &ListQuery { page: tributary_domain::paging::PageRequest { page: 1, page_size: 5000 }, ..Default::default() },
                )
                .await?;
            let items: Vec<ConnectionDto> = page.items.into_iter().map(|c| ConnectionDto::new(c, &public)).collect();
            if ctx.json {
                output::json(&items);
            } else {
                connection_table(&items);
            }
        }
        Command::Connections(ConnectionsCmd::Show { id })
        | Command::Connections(ConnectionsCmd::Unlink { id })
        | Command::Connections(ConnectionsCmd::Delete { id }) => {
            let id: ConnectionId = parse_id(id, "connection id")?;
            let c = p.connections().find(id).await?;
            match &cli.command {
                Command::Connections(ConnectionsCmd::Show { .. }) => {
                    let dto = ConnectionDto::new(c, &public);
                    if ctx.json {
                        output::json(&dto);
                    } else {
                        output::fields(&[
                            ("id", dto.id.to_string()),
                            ("integration", format!("{} ({})", dto.platform_name, dto.integration_key)),
                            ("status", dto.status.clone()),
                            (
                                "stripe account",
                                dto.connection_info.as_ref().and_then(|i| i.get("stripeAccountId").cloned()).unwrap_or_else(|| "-".into()),
                            ),
                            ("created", dto.created.clone()),
                            ("last sync", dto.last_sync.clone().unwrap_or_else(|| "never".into())),
                            ("linkUrl", dto.link_url.clone()),
                        ]);
                        if dto.data_connection_errors.is_empty() {
                            println!("errors          none");
                        } else {
                            output::table(
                                &["when", "status", "message"],
                                dto.data_connection_errors
                                    .iter()
                                    .map(|e| vec![e.errored_on_utc.clone(), e.status_code.clone(), e.error_message.clone()])
                                    .collect(),
                            );
                        }
                    }
                }
                Command::Connections(ConnectionsCmd::Unlink { .. }) => {
                    let c = linking(ctx)?.unlink(c.company_id, id, ConnectionStatus::Unlinked).await?;
                    report(
                        ctx.json,
                        serde_json::to_value(ConnectionDto::new(c, &public))?,
                        &format!("connection {id} unlinked (its data is kept)"),
                    );
                }
                _ => {
                    linking(ctx)?.delete(c.company_id, id).await?;
                    report(ctx.json, serde_json::json!({"deleted": id.to_string()}), &format!("deleted connection {id} and its data"));
                }
            }
        }
        Command::Keys(KeysCmd::Rotate { new_key }) => {
            let configured = compose::cipher_from(&ctx.settings)?;
            let (new_cipher, announce) = match new_key {
                Some(k) => {
                    let text = secret_arg(k.clone(), "new key")?;
                    let bytes = decode_master_key(text.expose_secret()).context("--new-key")?;
                    (AesGcmCipher::new(&bytes, &[]), true)
                }
                None => {
                    let current = decode_master_key(ctx.settings.master_key.as_deref().unwrap_or_default())?;
                    (AesGcmCipher::new(&current, &[]), false)
                }
            };
            let n = p.settings().rotate_secrets(&configured, &new_cipher).await?;
            let msg = if announce {
                format!(
                    "re-encrypted {n} secrets under key {}. Now set master_key to the new key (and keep the old one in previous_master_keys until every server has restarted).",
                    new_cipher.current_key_id()
                )
            } else {
                format!(
                    "re-encrypted {n} secrets under the configured master_key (key {}); previous_master_keys can now be removed.",
                    new_cipher.current_key_id()
                )
            };
            report(ctx.json, serde_json::json!({"reencrypted": n, "keyId": new_cipher.current_key_id()}), &msg);
        }
        Command::Data { company_id, connection_id, data_type, query, order_by, format } => {
            let format = if ctx.json { "json" } else { format.as_str() };
            crate::data::export(p, company_id, connection_id, data_type, query.as_deref(), order_by.as_deref(), format).await?;
        }
        Command::Sync { company_id, connection, data_type } => {
            let opts = tributary_api::ServeOptions::from_settings(&ctx.settings)?;
            crate::sync::run(p, &opts, company_id, connection.as_deref(), data_type.as_deref(), ctx.json).await?;
        }
        Command::Keys(KeysCmd::Generate) => unreachable!("handled before opening the store"),
        #[cfg(feature = "demo")]
        Command::Demo { .. } => unreachable!("handled before opening the store"),
    }
    Ok(())
}

/// The link use cases (unlink and delete revoke access at Stripe first).
fn linking(ctx: &Ctx) -> anyhow::Result<tributary_domain::service::Linking> {
    let cipher = compose::cipher_from(&ctx.settings)?;
    compose::linking(&ctx.store, cipher, &tributary_api::ServeOptions::from_settings(&ctx.settings)?)
}

fn connection_table(items: &[ConnectionDto]) {
    output::table(
        &["id", "integration", "status", "stripe account", "created", "linkUrl"],
        items
            .iter()
            .map(|c| {
                vec![
                    c.id.to_string(),
                    c.integration_key.clone(),
                    c.status.clone(),
                    c.connection_info.as_ref().and_then(|i| i.get("stripeAccountId").cloned()).unwrap_or_else(|| "-".into()),
                    c.created.clone(),
                    c.link_url.clone(),
                ]
            })
            .collect(),
    );
}

fn report(json: bool, value: serde_json::Value, text: &str) {
    if json {
        output::json(&value);
    } else {
        println!("{text}");
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn consumer_row(c: &tributary_domain::model::webhook::WebhookConsumer) -> Vec<String> {
    vec![
        c.id.to_string(),
        c.url.clone(),
        c.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "),
        c.company_tags.join(", "),
        if c.disabled {
            format!("yes{}", c.disabled_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())
        } else {
            "no".into()
        },
        c.failing_since.map(iso).unwrap_or_default(),
    ]
}

fn consumer_json(c: tributary_domain::model::webhook::WebhookConsumer, secret: Option<String>) -> serde_json::Value {
    let (reason, failing) = (c.disabled_reason.clone(), c.failing_since.map(iso));
    let mut v = serde_json::to_value(tributary_api::http::dto::WebhookConsumerDto::new(c, secret)).unwrap_or_default();
    v["disabledReason"] = serde_json::json!(reason);
    v["failingSince"] = serde_json::json!(failing);
    v
}

const CONSUMER_COLUMNS: [&str; 6] = ["id", "url", "event types", "company tags", "disabled", "failing since"];

async fn webhooks(p: &Platform, cmd: &WebhooksCmd, json: bool) -> anyhow::Result<()> {
    use tributary_domain::ids::WebhookConsumerId;
    match cmd {
        WebhooksCmd::List => {
            let all = p.webhooks().list_consumers().await?;
            if json {
                output::json(&all.into_iter().map(|c| consumer_json(c, None)).collect::<Vec<_>>());
            } else {
                output::table(&CONSUMER_COLUMNS, all.iter().map(consumer_row).collect());
            }
        }
        WebhooksCmd::Create { url, event_types, company_tags, disabled } => {
            let req = tributary_domain::model::webhook::NewConsumer {
                url: url.clone(),
                disabled: *disabled,
                event_types: event_types.clone(),
                company_tags: company_tags.clone(),
            };
            let (c, secret) = p.webhooks().create_consumer(req).await?;
            let secret = secret.expose_secret().to_owned();
            if json {
                output::json(&consumer_json(c, Some(secret)));
            } else {
                output::fields(&[("id", c.id.to_string()), ("url", c.url.clone()), ("signing secret", secret)]);
                println!("\nVerify deliveries with this secret (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature).");
            }
        }
        WebhooksCmd::Delete { id } => {
            let id: WebhookConsumerId = parse_id(id, "webhook id")?;
            p.webhooks().delete_consumer(id).await?;
            report(json, serde_json::json!({"deleted": id.to_string()}), &format!("deleted webhook consumer {id}"));
        }
        WebhooksCmd::Secret { id } => {
            let id: WebhookConsumerId = parse_id(id, "webhook id")?;
            let secret = p.webhooks().consumer_secret(id).await?;
            if json {
                output::json(&serde_json::json!({"id": id.to_string(), "signingSecret": secret.expose_secret()}));
            } else {
                println!("{}", secret.expose_secret());
            }
        }
        WebhooksCmd::Enable { id } | WebhooksCmd::Disable { id } => {
            let id: WebhookConsumerId = parse_id(id, "webhook id")?;
            let c = p.webhooks().set_consumer_disabled(id, matches!(cmd, WebhooksCmd::Disable { .. })).await?;
            if json {
                output::json(&consumer_json(c, None));
            } else {
                output::table(&CONSUMER_COLUMNS, vec![consumer_row(&c)]);
            }
        }
        WebhooksCmd::Attempts { id, limit } => {
            let id: WebhookConsumerId = parse_id(id, "webhook id")?;
            let (attempts, counts) = p.webhooks().attempts(id, *limit).await?;
            if json {
                let list: Vec<_> = attempts
                    .iter()
                    .map(|a| {
                        serde_json::json!({"deliveryId": a.delivery_id, "eventId": a.event_id, "eventType": a.event_type.as_str(),
                            "attempt": a.number, "at": iso(a.at), "statusCode": a.status_code, "latencyMs": a.latency_ms, "ok": a.ok, "error": a.error})
                    })
                    .collect();
                output::json(
                    &serde_json::json!({"pending": counts.pending, "delivered": counts.delivered, "failed": counts.failed, "attempts": list}),
                );
            } else {
                println!("deliveries: {} pending, {} delivered, {} failed", counts.pending, counts.delivered, counts.failed);
                output::table(
                    &["at", "event", "event id", "attempt", "status", "latency ms", "result"],
                    attempts
                        .iter()
                        .map(|a| {
                            vec![
                                iso(a.at),
                                a.event_type.as_str().to_owned(),
                                a.event_id.to_string(),
                                a.number.to_string(),
                                a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                                a.latency_ms.to_string(),
                                if a.ok { "ok".into() } else { a.error.clone().unwrap_or_default() },
                            ]
                        })
                        .collect(),
                );
            }
        }
    }
    Ok(())
}
