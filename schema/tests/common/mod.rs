//! Shared test helpers: proptest strategies for OTLP messages, the Parquet round trip, batch
//! "mangling" (what DataFusion / Parquet readers may hand back), and the documented
//! normalization applied to inputs before comparing them with `from_batches` output:
//! - containers (resource / scope) without rows are dropped, and metrics without data points;
//! - equal resources (prost-identical resource + schema URL) are merged in first-seen order,
//!   then equal scopes within them, then (metrics) equal metric identities within a scope;
//! - comparison is on the prost encoding, so floats compare bit-exactly (NaN payloads included).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics, metric::Data};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use prop::collection::vec;
use proptest::prelude::*;
use prost::Message;

// ---------------------------------------------------------------- strategies

pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z._]{1,10}",
        "\\PC{0,8}",
        Just("ünïcødé ✓ 日本".to_owned()),
    ]
}

pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..12)
}

/// Ids of typical and atypical lengths, including empty.
pub fn id(typical: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        vec(any::<u8>(), typical),
        vec(any::<u8>(), 0..20),
    ]
}

/// Floats including NaN (with payloads), ±Inf and -0.0.
pub fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        any::<u64>().prop_map(f64::from_bits),
    ]
}

pub fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        text().prop_map(Value::StringValue),
        any::<bool>().prop_map(Value::BoolValue),
        any::<i64>().prop_map(Value::IntValue),
        float().prop_map(Value::DoubleValue),
        bytes().prop_map(Value::BytesValue),
        any::<i32>().prop_map(Value::StringValueStrindex),
    ]
    .prop_map(|v| AnyValue { value: Some(v) });
    let leaf = prop_oneof![9 => leaf, 1 => Just(AnyValue { value: None })];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values })),
            }),
            vec((text(), proptest::option::of(inner)), 0..4).prop_map(|kvs| AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, value)| KeyValue {
                            key,
                            value,
                            key_strindex: 0
                        })
                        .collect(),
                })),
            }),
        ]
    })
}

pub fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    let key = prop_oneof![
        3 => text(),
        1 => Just("http.method".to_owned()),
        1 => Just("http.request.method".to_owned()),
        1 => Just("db.system.name".to_owned()),
        1 => Just("service.name".to_owned())
    ];
    vec(
        (key, proptest::option::weighted(0.9, any_value())).prop_map(|(key, value)| KeyValue {
            key,
            value,
            key_strindex: 0,
        }),
        0..4,
    )
}

fn fixed_resource() -> Resource {
    Resource {
        attributes: vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue("checkout".into())),
            }),
            key_strindex: 0,
        }],
        dropped_attributes_count: 0,
        entity_refs: vec![],
    }
}

pub fn resource() -> impl Strategy<Value = Option<Resource>> {
    let entity_ref = (text(), text(), vec(text(), 0..2), vec(text(), 0..2)).prop_map(
        |(schema_url, r#type, id_keys, description_keys)| EntityRef {
            schema_url,
            r#type,
            id_keys,
            description_keys,
        },
    );
    let arbitrary = (attributes(), any::<u32>(), vec(entity_ref, 0..2)).prop_map(
        |(attributes, dropped_attributes_count, entity_refs)| Resource {
            attributes,
            dropped_attributes_count,
            entity_refs,
        },
    );
    prop_oneof![
        1 => Just(None),
        2 => Just(Some(fixed_resource())),
        3 => arbitrary.prop_map(Some),
    ]
}

pub fn scope() -> impl Strategy<Value = Option<InstrumentationScope>> {
    let arbitrary = (text(), text(), attributes(), any::<u32>()).prop_map(
        |(name, version, attributes, dropped_attributes_count)| InstrumentationScope {
            name,
            version,
            attributes,
            dropped_attributes_count,
        },
    );
    prop_oneof![
        1 => Just(None),
        2 => Just(Some(InstrumentationScope { name: "lib".into(), ..Default::default() })),
        3 => arbitrary.prop_map(Some),
    ]
}

pub fn schema_url() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("https://opentelemetry.io/schemas/1.26.0".to_owned()),
        text()
    ]
}

// ---------------------------------------------------------------- parquet and mangling

/// Write `batch` to an in-memory Parquet file and read it back in small batches.
pub fn parquet_round_trip(batch: &RecordBatch) -> Vec<RecordBatch> {
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(buf))
        .expect("reader")
        .with_batch_size(5)
        .build()
        .expect("build")
        .collect::<Result<Vec<_>, _>>()
        .expect("read")
}

fn viewify(dt: &DataType) -> DataType {
    match dt {
        DataType::Utf8 => DataType::Utf8View,
        DataType::Binary => DataType::BinaryView,
        DataType::List(f) => DataType::List(Arc::new(
            f.as_ref().clone().with_data_type(viewify(f.data_type())),
        )),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| f.as_ref().clone().with_data_type(viewify(f.data_type())))
                .collect(),
        ),
        DataType::Map(f, sorted) => DataType::Map(
            Arc::new(f.as_ref().clone().with_data_type(viewify(f.data_type()))),
            *sorted,
        ),
        other => other.clone(),
    }
}

/// What a query engine may hand back: columns reversed, an extra (hive partition) column,
/// top-level strings as dictionaries, nested strings / binaries as views.
pub fn mangle(batch: &RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()).rev() {
        let target = match field.data_type() {
            DataType::Utf8 => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            other => viewify(other),
        };
        let cast = arrow::compute::cast(column, &target).expect("cast to mangled type");
        fields.push(Field::new(field.name(), target, true));
        columns.push(cast);
    }
    fields.push(Field::new("date", DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from(vec![
        "2024-01-01";
        batch.num_rows()
    ])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("mangled batch")
}

// ---------------------------------------------------------------- normalization

fn key<M: Message>(m: Option<&M>, url: &str) -> Vec<u8> {
    let mut k = m.map(|m| m.encode_to_vec()).map_or(vec![0], |mut v| {
        v.insert(0, 1);
        v
    });
    k.extend((url.len() as u64).to_le_bytes());
    k.extend(url.as_bytes());
    k
}

macro_rules! regroup {
    ($input:expr, $res:ident, $scopes:ident, $scope:ident, $items:ident) => {{
        let mut out: Vec<$res> = Vec::new();
        let mut rindex: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut sindex: HashMap<(usize, Vec<u8>), usize> = HashMap::new();
        for r in $input {
            for s in &r.$scopes {
                if s.$items.is_empty() {
                    continue;
                }
                let ri = *rindex
                    .entry(key(r.resource.as_ref(), &r.schema_url))
                    .or_insert_with(|| {
                        out.push($res {
                            resource: r.resource.clone(),
                            schema_url: r.schema_url.clone(),
                            $scopes: vec![],
                        });
                        out.len() - 1
                    });
                let scopes = &mut out[ri].$scopes;
                let si = *sindex
                    .entry((ri, key(s.scope.as_ref(), &s.schema_url)))
                    .or_insert_with(|| {
                        scopes.push($scope {
                            scope: s.scope.clone(),
                            schema_url: s.schema_url.clone(),
                            $items: vec![],
                        });
                        scopes.len() - 1
                    });
                scopes[si].$items.extend(s.$items.iter().cloned());
            }
        }
        out
    }};
}

pub fn normalize_traces(input: &[ResourceSpans]) -> Vec<ResourceSpans> {
    regroup!(input, ResourceSpans, scope_spans, ScopeSpans, spans)
}

pub fn normalize_logs(input: &[ResourceLogs]) -> Vec<ResourceLogs> {
    regroup!(input, ResourceLogs, scope_logs, ScopeLogs, log_records)
}

fn point_count(data: &Data) -> usize {
    match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(e) => e.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    }
}

fn without_points(data: &Data) -> Data {
    let mut data = data.clone();
    match &mut data {
        Data::Gauge(g) => g.data_points.clear(),
        Data::Sum(s) => s.data_points.clear(),
        Data::Histogram(h) => h.data_points.clear(),
        Data::ExponentialHistogram(e) => e.data_points.clear(),
        Data::Summary(s) => s.data_points.clear(),
    }
    data
}

fn take_points(data: &mut Data, into: &mut Data) {
    match (data, into) {
        (Data::Gauge(a), Data::Gauge(b)) => b.data_points.append(&mut a.data_points),
        (Data::Sum(a), Data::Sum(b)) => b.data_points.append(&mut a.data_points),
        (Data::Histogram(a), Data::Histogram(b)) => b.data_points.append(&mut a.data_points),
        (Data::ExponentialHistogram(a), Data::ExponentialHistogram(b)) => {
            b.data_points.append(&mut a.data_points)
        }
        (Data::Summary(a), Data::Summary(b)) => b.data_points.append(&mut a.data_points),
        _ => panic!("metric identity includes the data kind"),
    }
}

pub fn normalize_metrics(input: &[ResourceMetrics]) -> Vec<ResourceMetrics> {
    let pruned: Vec<ResourceMetrics> = input
        .iter()
        .map(|r| ResourceMetrics {
            scope_metrics: r
                .scope_metrics
                .iter()
                .map(|s| ScopeMetrics {
                    metrics: s
                        .metrics
                        .iter()
                        .filter(|m| m.data.as_ref().is_some_and(|d| point_count(d) > 0))
                        .cloned()
                        .collect(),
                    ..s.clone()
                })
                .collect(),
            ..r.clone()
        })
        .collect();
    let mut out = regroup!(
        &pruned,
        ResourceMetrics,
        scope_metrics,
        ScopeMetrics,
        metrics
    );
    for scope in out.iter_mut().flat_map(|r| r.scope_metrics.iter_mut()) {
        let mut merged: Vec<opentelemetry_proto::tonic::metrics::v1::Metric> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        for mut metric in std::mem::take(&mut scope.metrics) {
            let mut data = metric.data.take().expect("pruned");
            metric.data = Some(without_points(&data));
            let i = *index.entry(metric.encode_to_vec()).or_insert_with(|| {
                merged.push(metric);
                merged.len() - 1
            });
            let target = merged[i].data.as_mut().expect("set above");
            take_points(&mut data, target);
        }
        scope.metrics = merged;
    }
    out
}
