//! Column and nested-field names of the three signal tables.
//!
//! Invariant: these constants are the only spelling of column names in this crate; the schema
//! definitions and the builders/readers use them, so renaming one here renames it everywhere.
//! Names are snake_case ASCII and safe to use unquoted in DataFusion SQL.

// ---- common to every signal: resource, scope and promoted resource attributes ----

/// Promoted copy of resource attribute `service.name`.
pub const SERVICE_NAME: &str = "service_name";
/// Promoted copy of resource attribute `service.namespace`.
pub const SERVICE_NAMESPACE: &str = "service_namespace";
/// Promoted copy of resource attribute `service.version`.
pub const SERVICE_VERSION: &str = "service_version";
/// Promoted copy of `deployment.environment.name`, else `deployment.environment`.
pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment_environment";
/// Promoted copy of resource attribute `host.name`.
pub const HOST_NAME: &str = "host_name";
/// Promoted copy of resource attribute `k8s.namespace.name`.
pub const K8S_NAMESPACE_NAME: &str = "k8s_namespace_name";
/// Promoted copy of resource attribute `k8s.pod.name`.
pub const K8S_POD_NAME: &str = "k8s_pod_name";
/// Promoted copy of resource attribute `k8s.container.name`.
pub const K8S_CONTAINER_NAME: &str = "k8s_container_name";
/// Promoted copy of resource attribute `k8s.node.name`.
pub const K8S_NODE_NAME: &str = "k8s_node_name";
/// Promoted copy of resource attribute `k8s.deployment.name`.
pub const K8S_DEPLOYMENT_NAME: &str = "k8s_deployment_name";
/// Resource attributes (typed attribute map); null when the resource is absent.
pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
/// Resource dropped-attributes count; null when the resource is absent.
pub const RESOURCE_DROPPED_ATTRIBUTES_COUNT: &str = "resource_dropped_attributes_count";
/// Schema URL of the `Resource*` container; null when empty.
pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
/// Prost-encoded `Resource { entity_refs, .. }`; null when there are none.
pub const RESOURCE_ENTITY_REFS: &str = "resource_entity_refs";
/// Instrumentation scope name; null when the scope is absent.
pub const SCOPE_NAME: &str = "scope_name";
/// Instrumentation scope version; null when the scope is absent.
pub const SCOPE_VERSION: &str = "scope_version";
/// Instrumentation scope attributes (typed attribute map).
pub const SCOPE_ATTRIBUTES: &str = "scope_attributes";
/// Scope dropped-attributes count; null when the scope is absent.
pub const SCOPE_DROPPED_ATTRIBUTES_COUNT: &str = "scope_dropped_attributes_count";
/// Schema URL of the `Scope*` container; null when empty.
pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";

// ---- shared by several tables ----

/// Trace id, lowercase hex.
pub const TRACE_ID: &str = "trace_id";
/// Span id, lowercase hex.
pub const SPAN_ID: &str = "span_id";
/// Record attributes (typed attribute map).
pub const ATTRIBUTES: &str = "attributes";
/// Record dropped-attributes count.
pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
/// Flags (span flags, log record flags, data point flags).
pub const FLAGS: &str = "flags";
/// Span name / event name.
pub const NAME: &str = "name";
/// Timestamp: log time, data point time, event/exemplar time.
pub const TIME: &str = "time";
/// Span start / data point start timestamp.
pub const START_TIME: &str = "start_time";

// ---- spans ----

/// Parent span id, lowercase hex; null for root spans.
pub const PARENT_SPAN_ID: &str = "parent_span_id";
/// W3C trace state.
pub const TRACE_STATE: &str = "trace_state";
/// Raw `SpanKind` enum value.
pub const KIND: &str = "kind";
/// Span end timestamp.
pub const END_TIME: &str = "end_time";
/// Derived: `end_time - start_time` in nanoseconds.
pub const DURATION_NANOS: &str = "duration_nanos";
/// List of span events.
pub const EVENTS: &str = "events";
/// Dropped events count.
pub const DROPPED_EVENTS_COUNT: &str = "dropped_events_count";
/// List of span links.
pub const LINKS: &str = "links";
/// Dropped links count.
pub const DROPPED_LINKS_COUNT: &str = "dropped_links_count";
/// Raw `StatusCode` enum value; null when the span has no status.
pub const STATUS_CODE: &str = "status_code";
/// Status message; null when the span has no status.
pub const STATUS_MESSAGE: &str = "status_message";
/// Promoted: `http.request.method`, else `http.method`.
pub const HTTP_METHOD: &str = "http_method";
/// Promoted: `http.response.status_code`, else `http.status_code` (rendered as text).
pub const HTTP_STATUS_CODE: &str = "http_status_code";
/// Promoted: `http.route`.
pub const HTTP_ROUTE: &str = "http_route";
/// Promoted: `rpc.method`.
pub const RPC_METHOD: &str = "rpc_method";
/// Promoted: `db.system` (else `db.system.name`).
pub const DB_SYSTEM: &str = "db_system";

// ---- logs ----

/// Observed timestamp.
pub const OBSERVED_TIME: &str = "observed_time";
/// Raw `SeverityNumber` enum value.
pub const SEVERITY_NUMBER: &str = "severity_number";
/// Severity text.
pub const SEVERITY_TEXT: &str = "severity_text";
/// Body as text (string bodies verbatim, others rendered); null without a body.
pub const BODY: &str = "body";
/// Prost-encoded `AnyValue` body when the body is not a string; else null.
pub const BODY_ANY: &str = "body_any";
/// Event name.
pub const EVENT_NAME: &str = "event_name";

// ---- metrics ----

/// Metric name.
pub const METRIC_NAME: &str = "metric_name";
/// Metric description.
pub const METRIC_DESCRIPTION: &str = "metric_description";
/// Metric unit.
pub const METRIC_UNIT: &str = "metric_unit";
/// `gauge` | `sum` | `histogram` | `exponential_histogram` | `summary`.
pub const METRIC_TYPE: &str = "metric_type";
/// Metric metadata (typed attribute map).
pub const METRIC_METADATA: &str = "metric_metadata";
/// Raw `AggregationTemporality`; null for gauge and summary.
pub const AGGREGATION_TEMPORALITY: &str = "aggregation_temporality";
/// Sum monotonicity; null except for sums.
pub const IS_MONOTONIC: &str = "is_monotonic";
/// Derived: xxh3-64 of metric name, point attributes and service name.
pub const SERIES_ID: &str = "series_id";
/// Number value (double points; also exemplar field).
pub const VALUE_DOUBLE: &str = "value_double";
/// Number value (int points; also exemplar field).
pub const VALUE_INT: &str = "value_int";
/// List of exemplars.
pub const EXEMPLARS: &str = "exemplars";
/// Histogram / summary count.
pub const COUNT: &str = "count";
/// Histogram / summary sum.
pub const SUM: &str = "sum";
/// Histogram minimum.
pub const MIN: &str = "min";
/// Histogram maximum.
pub const MAX: &str = "max";
/// Explicit-bucket histogram counts.
pub const BUCKET_COUNTS: &str = "bucket_counts";
/// Explicit-bucket histogram bounds.
pub const EXPLICIT_BOUNDS: &str = "explicit_bounds";
/// Exponential histogram scale.
pub const SCALE: &str = "scale";
/// Exponential histogram zero count.
pub const ZERO_COUNT: &str = "zero_count";
/// Exponential histogram zero threshold.
pub const ZERO_THRESHOLD: &str = "zero_threshold";
/// Exponential histogram positive bucket offset; null when there are no positive buckets.
pub const POSITIVE_OFFSET: &str = "positive_offset";
/// Exponential histogram positive bucket counts.
pub const POSITIVE_BUCKET_COUNTS: &str = "positive_bucket_counts";
/// Exponential histogram negative bucket offset; null when there are no negative buckets.
pub const NEGATIVE_OFFSET: &str = "negative_offset";
/// Exponential histogram negative bucket counts.
pub const NEGATIVE_BUCKET_COUNTS: &str = "negative_bucket_counts";
/// Summary quantiles.
pub const QUANTILE_VALUES: &str = "quantile_values";
/// Field of a `quantile_values` element.
pub const QUANTILE: &str = "quantile";
/// Field of a `quantile_values` element.
pub const VALUE: &str = "value";
/// Exemplar field: attributes filtered out of the point.
pub const FILTERED_ATTRIBUTES: &str = "filtered_attributes";

// ---- typed attribute map layout ----

/// Entries struct of every attribute map.
pub const MAP_ENTRIES: &str = "entries";
/// Key field of the entries struct.
pub const MAP_KEY: &str = "key";
/// Value field (a struct of the fields below) of the entries struct.
pub const MAP_VALUE: &str = "value";
/// Attribute value field: string values.
pub const ATTR_STR: &str = "str";
/// Attribute value field: int values.
pub const ATTR_INT: &str = "int";
/// Attribute value field: double values.
pub const ATTR_DOUBLE: &str = "double";
/// Attribute value field: bool values.
pub const ATTR_BOOL: &str = "bool";
/// Attribute value field: bytes values.
pub const ATTR_BYTES: &str = "bytes";
/// Attribute value field: prost-encoded `AnyValue` for array / kvlist (and other) values.
pub const ATTR_ANY: &str = "any";
