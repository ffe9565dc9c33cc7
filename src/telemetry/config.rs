//! The `OTEL_*` variables keel honours, parsed and validated with the rest
//! of the configuration, before any socket is bound: a bad value stops
//! start-up with the variable, the value and the allowed values, as every
//! other keel setting does.

use crate::env::{ConfigError, EnvSource, boolean, choice, float, http_url, millis, number};
use std::time::Duration;

/// The only OTLP protocol this build speaks.
pub const PROTOCOL_HTTP_PROTOBUF: &str = "http/protobuf";

/// How root spans (and children of remote parents) are sampled:
/// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    /// `always_on`: every trace.
    AlwaysOn,
    /// `always_off`: no trace.
    AlwaysOff,
    /// `traceidratio`: a share of traces, by trace id, ignoring the parent.
    Ratio(f64),
    /// `parentbased_always_on` (the default): follow the caller's sampled
    /// flag, sample every root.
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`: follow the caller, sample no root.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: follow the caller, sample a share of roots.
    ParentBasedRatio(f64),
}

/// Trace export settings; present only when an OTLP endpoint is configured
/// (no endpoint: no exporter, no OpenTelemetry layer, no cost per request).
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// Where spans are posted: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given,
    /// else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`.
    pub endpoint: String,
    /// `service.name` (`OTEL_SERVICE_NAME`, else `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`, else `keel`).
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES` (`key=value,…`, values percent-decoded),
    /// without `service.name`.
    pub resource_attributes: Vec<(String, String)>,
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler: SamplerConfig,
    /// Delay between two exports (`OTEL_BSP_SCHEDULE_DELAY`, ms, default 5000).
    pub schedule_delay: Duration,
    /// Ended spans held for export; more are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048).
    pub max_queue_size: usize,
    /// Spans per export request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, default 512).
    pub max_export_batch_size: usize,
    /// Longest export request (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, ms, default 10000).
    pub export_timeout: Duration,
}

impl TracingConfig {
    /// Reads the `OTEL_*` variables: `Ok(None)` when no endpoint is set or
    /// `OTEL_SDK_DISABLED=true`.
    pub fn from_env(env: &dyn EnvSource) -> Result<Option<TracingConfig>, ConfigError> {
        // Validated even when tracing stays off: a typo is reported, not ignored.
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(v) = env.get(name)
                && v.trim() != PROTOCOL_HTTP_PROTOBUF
            {
                return Err(ConfigError::invalid(
                    name,
                    v,
                    "http/protobuf (grpc and http/json are not built into keel)",
                ));
            }
        }
        let sampler = sampler(env)?;
        let (service_name, resource_attributes) = resource(env)?;
        let max_queue_size = number(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048usize, 1, 1_000_000)?;
        let max_export_batch_size = number(
            env,
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            512usize,
            1,
            1_000_000,
        )?;
        if max_export_batch_size > max_queue_size {
            return Err(ConfigError::conflict(
                &["OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_MAX_QUEUE_SIZE"],
                format!(
                    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE={max_export_batch_size} must not exceed \
                     OTEL_BSP_MAX_QUEUE_SIZE={max_queue_size}"
                ),
            ));
        }
        let schedule_delay = millis(env, "OTEL_BSP_SCHEDULE_DELAY", 5000, 1, 600_000)?;
        let timeout_ms = match env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") {
            Some(_) => number(
                env,
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                10_000u64,
                1,
                600_000,
            )?,
            None => number(env, "OTEL_EXPORTER_OTLP_TIMEOUT", 10_000u64, 1, 600_000)?,
        };
        let endpoint = match env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(v) => Some(checked_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &v)?),
            None => match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(v) => {
                    let base = checked_url("OTEL_EXPORTER_OTLP_ENDPOINT", &v)?;
                    Some(format!("{}/v1/traces", base.trim_end_matches('/')))
                }
                None => None,
            },
        };
        if boolean(env, "OTEL_SDK_DISABLED", false)? {
            return Ok(None);
        }
        Ok(endpoint.map(|endpoint| TracingConfig {
            endpoint,
            service_name,
            resource_attributes,
            sampler,
            schedule_delay,
            max_queue_size,
            max_export_batch_size,
            export_timeout: Duration::from_millis(timeout_ms),
        }))
    }
}

fn checked_url(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    http_url(
        name,
        raw,
        "an http:// or https:// URL such as http://127.0.0.1:4318",
    )
}

fn sampler(env: &dyn EnvSource) -> Result<SamplerConfig, ConfigError> {
    let ratio = || float(env, "OTEL_TRACES_SAMPLER_ARG", 1.0, 0.0, 1.0);
    let sampler = choice(
        env,
        "OTEL_TRACES_SAMPLER",
        &[
            ("always_on", SamplerChoice::AlwaysOn),
            ("always_off", SamplerChoice::AlwaysOff),
            ("traceidratio", SamplerChoice::Ratio),
            ("parentbased_always_on", SamplerChoice::ParentBasedAlwaysOn),
            (
                "parentbased_always_off",
                SamplerChoice::ParentBasedAlwaysOff,
            ),
            ("parentbased_traceidratio", SamplerChoice::ParentBasedRatio),
        ],
    )?;
    Ok(
        match sampler.unwrap_or(SamplerChoice::ParentBasedAlwaysOn) {
            SamplerChoice::AlwaysOn => SamplerConfig::AlwaysOn,
            SamplerChoice::AlwaysOff => SamplerConfig::AlwaysOff,
            SamplerChoice::Ratio => SamplerConfig::Ratio(ratio()?),
            SamplerChoice::ParentBasedAlwaysOn => SamplerConfig::ParentBasedAlwaysOn,
            SamplerChoice::ParentBasedAlwaysOff => SamplerConfig::ParentBasedAlwaysOff,
            SamplerChoice::ParentBasedRatio => SamplerConfig::ParentBasedRatio(ratio()?),
        },
    )
}

/// The `OTEL_TRACES_SAMPLER` names, before the ratio is read.
#[derive(Debug, Clone, Copy)]
enum SamplerChoice {
    AlwaysOn,
    AlwaysOff,
    Ratio,
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedRatio,
}

/// `(service.name, other attributes)` from `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES`.
fn resource(env: &dyn EnvSource) -> Result<(String, Vec<(String, String)>), ConfigError> {
    let mut service_name = None;
    let mut attributes = Vec::new();
    if let Some(raw) = env.get("OTEL_RESOURCE_ATTRIBUTES") {
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let parsed = item.split_once('=').and_then(|(k, v)| {
                let key = k.trim();
                let value = percent_decode(v.trim())?;
                (!key.is_empty()).then(|| (key.to_string(), value))
            });
            let Some((key, value)) = parsed else {
                return Err(ConfigError::invalid(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    raw.clone(),
                    "comma-separated key=value pairs (values percent-encoded), \
                     such as deployment.environment.name=prod,service.version=1.2",
                ));
            };
            if key == "service.name" {
                service_name = Some(value);
            } else {
                attributes.push((key, value));
            }
        }
    }
    if let Some(name) = env.get("OTEL_SERVICE_NAME") {
        service_name = Some(name.trim().to_string());
    }
    Ok((service_name.unwrap_or_else(|| "keel".into()), attributes))
}

/// `%XX` decoding; `None` on a broken escape or a non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn config(vars: &[(&str, &str)]) -> Result<Option<TracingConfig>, ConfigError> {
        TracingConfig::from_env(&MapEnv::new(vars))
    }

    #[test]
    fn tracing_is_off_without_an_endpoint() {
        assert_eq!(config(&[]).unwrap(), None);
        assert_eq!(
            config(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_SDK_DISABLED", "true")
            ])
            .unwrap(),
            None
        );
    }

    #[test]
    fn tracing_defaults_and_endpoint_resolution() {
        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(c.service_name, "keel");
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(c.max_queue_size, 2048);
        assert_eq!(c.schedule_delay, Duration::from_secs(5));
        assert_eq!(c.export_timeout, Duration::from_secs(10));
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:2/custom"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=x,team=a%2Cb"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://b:2/custom");
        assert_eq!(c.service_name, "x");
        assert_eq!(c.resource_attributes, vec![("team".into(), "a,b".into())]);
        assert_eq!(c.sampler, SamplerConfig::ParentBasedRatio(0.25));
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=x"),
            ("OTEL_SERVICE_NAME", "y"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.service_name, "y", "OTEL_SERVICE_NAME wins");
    }

    #[test]
    fn bad_tracing_values_name_the_variable_and_the_allowed_values() {
        let err = config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\": allowed http/protobuf (grpc and \
             http/json are not built into keel)"
        );
        let err = config(&[("OTEL_TRACES_SAMPLER", "sometimes")]).unwrap_err();
        assert!(
            err.to_string().contains("parentbased_traceidratio"),
            "{err}"
        );
        let err = config(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("OTEL_TRACES_SAMPLER_ARG"), "{err}");
        let err = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")]).unwrap_err();
        assert!(
            err.to_string().contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
            "{err}"
        );
        let err = config(&[("OTEL_RESOURCE_ATTRIBUTES", "novalue")]).unwrap_err();
        assert!(
            err.to_string().contains("OTEL_RESOURCE_ATTRIBUTES"),
            "{err}"
        );
        let err = config(&[("OTEL_BSP_SCHEDULE_DELAY", "soon")]).unwrap_err();
        assert!(err.to_string().contains("OTEL_BSP_SCHEDULE_DELAY"), "{err}");
        let err = config(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("OTEL_BSP_MAX_QUEUE_SIZE"), "{err}");
    }
}
