//! The columns every signal table shares: the denormalized resource and instrumentation scope,
//! the promoted resource attributes, and the regrouping of rows into resource / scope
//! containers when converting back.
//!
//! Invariants:
//! - A missing `Resource` is stored as null `resource_attributes`,
//!   `resource_dropped_attributes_count` and `resource_entity_refs`; a present one always has a
//!   non-null (possibly empty) attribute map and dropped count. A missing
//!   `InstrumentationScope` likewise nulls all four `scope_*` fields other than
//!   `scope_schema_url`. Empty schema URLs are stored as null.
//! - Promoted columns are copies of the first matching resource attribute, rendered with
//!   [`crate::any_value_to_string`]; they are never read back.
//! - Regrouping keys are the prost encoding of the resource (scope) plus its schema URL, so
//!   "identical" means bit-identical, NaN attributes included; groups keep first-seen order.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, StringArray, StringBuilder, UInt32Array,
    UInt32Builder,
};
use arrow::datatypes::{DataType, Field};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::any_value::{
    AttributeMapBuilder, AttributeMapReader, attribute_map_type, find_rendered,
};
use crate::columns::*;
use crate::error::{Error, Result};
use crate::read::{BatchColumns, opt_bin, opt_str, str_or_empty};

/// Promoted resource-attribute columns and the attribute keys they copy, by priority.
const PROMOTED: [(&str, &[&str]); 10] = [
    (SERVICE_NAME, &["service.name"]),
    (SERVICE_NAMESPACE, &["service.namespace"]),
    (SERVICE_VERSION, &["service.version"]),
    (
        DEPLOYMENT_ENVIRONMENT,
        &["deployment.environment.name", "deployment.environment"],
    ),
    (HOST_NAME, &["host.name"]),
    (K8S_NAMESPACE_NAME, &["k8s.namespace.name"]),
    (K8S_POD_NAME, &["k8s.pod.name"]),
    (K8S_CONTAINER_NAME, &["k8s.container.name"]),
    (K8S_NODE_NAME, &["k8s.node.name"]),
    (K8S_DEPLOYMENT_NAME, &["k8s.deployment.name"]),
];

/// Names of the promoted (derived) common columns.
pub(crate) fn promoted_columns() -> impl Iterator<Item = &'static str> {
    PROMOTED.iter().map(|(c, _)| *c)
}

/// First present key of `keys` in `attributes`, rendered.
pub(crate) fn promote(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    keys: &[&str],
) -> Option<String> {
    keys.iter().find_map(|k| find_rendered(attributes, k))
}

/// The common fields, in schema order (appended after each signal's own fields).
pub(crate) fn common_fields() -> Vec<Field> {
    let mut fields: Vec<Field> = promoted_columns()
        .map(|c| Field::new(c, DataType::Utf8, true))
        .collect();
    fields.extend([
        Field::new(RESOURCE_ATTRIBUTES, attribute_map_type(), true),
        Field::new(RESOURCE_DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, true),
        Field::new(RESOURCE_SCHEMA_URL, DataType::Utf8, true),
        Field::new(RESOURCE_ENTITY_REFS, DataType::Binary, true),
        Field::new(SCOPE_NAME, DataType::Utf8, true),
        Field::new(SCOPE_VERSION, DataType::Utf8, true),
        Field::new(SCOPE_ATTRIBUTES, attribute_map_type(), true),
        Field::new(SCOPE_DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, true),
        Field::new(SCOPE_SCHEMA_URL, DataType::Utf8, true),
    ]);
    fields
}

/// What a resource contributes to each of its rows, computed once per container.
pub(crate) struct ResourceInfo<'a> {
    resource: Option<&'a Resource>,
    schema_url: &'a str,
    promoted: Vec<Option<String>>,
    entity_refs: Option<Vec<u8>>,
}

impl<'a> ResourceInfo<'a> {
    pub(crate) fn new(resource: Option<&'a Resource>, schema_url: &'a str) -> Self {
        let attributes = resource
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let promoted = PROMOTED
            .iter()
            .map(|(_, keys)| promote(attributes, keys))
            .collect();
        let entity_refs = resource.filter(|r| !r.entity_refs.is_empty()).map(|r| {
            Resource {
                entity_refs: r.entity_refs.clone(),
                ..Default::default()
            }
            .encode_to_vec()
        });
        Self {
            resource,
            schema_url,
            promoted,
            entity_refs,
        }
    }

    /// The promoted `service.name`, if any.
    pub(crate) fn service_name(&self) -> Option<&str> {
        self.promoted.first().and_then(|s| s.as_deref())
    }
}

/// Builds the common columns, one row per appended record.
pub(crate) struct CommonBuilder {
    promoted: Vec<StringBuilder>,
    resource_attributes: AttributeMapBuilder,
    resource_dropped: UInt32Builder,
    resource_schema_url: StringBuilder,
    resource_entity_refs: BinaryBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: AttributeMapBuilder,
    scope_dropped: UInt32Builder,
    scope_schema_url: StringBuilder,
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl CommonBuilder {
    pub(crate) fn new() -> Self {
        Self {
            promoted: PROMOTED.iter().map(|_| StringBuilder::new()).collect(),
            resource_attributes: AttributeMapBuilder::new(RESOURCE_ATTRIBUTES),
            resource_dropped: UInt32Builder::new(),
            resource_schema_url: StringBuilder::new(),
            resource_entity_refs: BinaryBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            scope_attributes: AttributeMapBuilder::new(SCOPE_ATTRIBUTES),
            scope_dropped: UInt32Builder::new(),
            scope_schema_url: StringBuilder::new(),
        }
    }

    pub(crate) fn append(
        &mut self,
        resource: &ResourceInfo<'_>,
        scope: Option<&InstrumentationScope>,
        scope_schema_url: &str,
    ) -> Result<()> {
        for (builder, value) in self.promoted.iter_mut().zip(&resource.promoted) {
            builder.append_option(value.as_deref());
        }
        match resource.resource {
            Some(r) => {
                self.resource_attributes.append(&r.attributes)?;
                self.resource_dropped
                    .append_value(r.dropped_attributes_count);
            }
            None => {
                self.resource_attributes.append_null()?;
                self.resource_dropped.append_null();
            }
        }
        self.resource_schema_url
            .append_option(non_empty(resource.schema_url));
        self.resource_entity_refs
            .append_option(resource.entity_refs.as_deref());
        match scope {
            Some(s) => {
                self.scope_name.append_value(&s.name);
                self.scope_version.append_value(&s.version);
                self.scope_attributes.append(&s.attributes)?;
                self.scope_dropped.append_value(s.dropped_attributes_count);
            }
            None => {
                self.scope_name.append_null();
                self.scope_version.append_null();
                self.scope_attributes.append_null()?;
                self.scope_dropped.append_null();
            }
        }
        self.scope_schema_url
            .append_option(non_empty(scope_schema_url));
        Ok(())
    }

    /// The finished columns, in [`common_fields`] order.
    pub(crate) fn finish(mut self) -> Result<Vec<ArrayRef>> {
        let mut out: Vec<ArrayRef> = self
            .promoted
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        out.push(Arc::new(self.resource_attributes.finish()?));
        out.push(Arc::new(self.resource_dropped.finish()));
        out.push(Arc::new(self.resource_schema_url.finish()));
        out.push(Arc::new(self.resource_entity_refs.finish()));
        out.push(Arc::new(self.scope_name.finish()));
        out.push(Arc::new(self.scope_version.finish()));
        out.push(Arc::new(self.scope_attributes.finish()?));
        out.push(Arc::new(self.scope_dropped.finish()));
        out.push(Arc::new(self.scope_schema_url.finish()));
        Ok(out)
    }
}

/// Reads the resource and scope of a row.
pub(crate) struct CommonReader<'a> {
    resource_attributes: AttributeMapReader<'a>,
    resource_dropped: &'a UInt32Array,
    resource_schema_url: &'a StringArray,
    resource_entity_refs: &'a BinaryArray,
    scope_name: &'a StringArray,
    scope_version: &'a StringArray,
    scope_attributes: AttributeMapReader<'a>,
    scope_dropped: &'a UInt32Array,
    scope_schema_url: &'a StringArray,
}

impl<'a> CommonReader<'a> {
    pub(crate) fn new(cols: &'a BatchColumns) -> Result<Self> {
        Ok(Self {
            resource_attributes: cols.map(RESOURCE_ATTRIBUTES)?,
            resource_dropped: cols.typed(RESOURCE_DROPPED_ATTRIBUTES_COUNT)?,
            resource_schema_url: cols.typed(RESOURCE_SCHEMA_URL)?,
            resource_entity_refs: cols.typed(RESOURCE_ENTITY_REFS)?,
            scope_name: cols.typed(SCOPE_NAME)?,
            scope_version: cols.typed(SCOPE_VERSION)?,
            scope_attributes: cols.map(SCOPE_ATTRIBUTES)?,
            scope_dropped: cols.typed(SCOPE_DROPPED_ATTRIBUTES_COUNT)?,
            scope_schema_url: cols.typed(SCOPE_SCHEMA_URL)?,
        })
    }

    pub(crate) fn resource(&self, row: usize) -> Result<(Option<Resource>, String)> {
        let entity_refs = opt_bin(self.resource_entity_refs, row);
        let present = !self.resource_attributes.is_null(row)
            || self.resource_dropped.is_valid(row)
            || entity_refs.is_some();
        let resource = if present {
            let entity_refs = match entity_refs {
                Some(bytes) => {
                    Resource::decode(bytes)
                        .map_err(|source| Error::Decode {
                            what: RESOURCE_ENTITY_REFS.to_owned(),
                            source,
                        })?
                        .entity_refs
                }
                None => Vec::new(),
            };
            Some(Resource {
                attributes: self.resource_attributes.get(row)?,
                dropped_attributes_count: crate::read::or_default(self.resource_dropped, row),
                entity_refs,
            })
        } else {
            None
        };
        Ok((
            resource,
            str_or_empty(self.resource_schema_url, row).to_owned(),
        ))
    }

    pub(crate) fn scope(&self, row: usize) -> Result<(Option<InstrumentationScope>, String)> {
        let name = opt_str(self.scope_name, row);
        let version = opt_str(self.scope_version, row);
        let present = name.is_some()
            || version.is_some()
            || !self.scope_attributes.is_null(row)
            || self.scope_dropped.is_valid(row);
        let scope = if present {
            Some(InstrumentationScope {
                name: name.unwrap_or_default().to_owned(),
                version: version.unwrap_or_default().to_owned(),
                attributes: self.scope_attributes.get(row)?,
                dropped_attributes_count: crate::read::or_default(self.scope_dropped, row),
            })
        } else {
            None
        };
        Ok((scope, str_or_empty(self.scope_schema_url, row).to_owned()))
    }
}

/// Identity of an optional message plus a schema URL, used as a grouping key.
pub(crate) fn group_key<M: Message>(message: Option<&M>, schema_url: &str) -> Vec<u8> {
    let mut key = Vec::new();
    match message {
        Some(m) => {
            key.push(1);
            // Writing into a Vec cannot run out of capacity.
            let _ = m.encode_length_delimited(&mut key);
        }
        None => key.push(0),
    }
    key.extend_from_slice(schema_url.as_bytes());
    key
}

/// Rows regrouped under one resource.
pub(crate) struct ResourceGroup<T> {
    pub(crate) resource: Option<Resource>,
    pub(crate) schema_url: String,
    pub(crate) scopes: Vec<ScopeGroup<T>>,
}

/// Rows regrouped under one scope of a resource.
pub(crate) struct ScopeGroup<T> {
    pub(crate) scope: Option<InstrumentationScope>,
    pub(crate) schema_url: String,
    pub(crate) items: T,
}

/// Regroups rows by (resource, schema URL) then (scope, schema URL), in first-seen order.
pub(crate) struct Grouper<T> {
    resources: Vec<ResourceGroup<T>>,
    resource_index: HashMap<Vec<u8>, usize>,
    scope_index: HashMap<(usize, Vec<u8>), usize>,
}

impl<T: Default> Grouper<T> {
    pub(crate) fn new() -> Self {
        Self {
            resources: Vec::new(),
            resource_index: HashMap::new(),
            scope_index: HashMap::new(),
        }
    }

    /// The item container of the scope group row `row` belongs to.
    pub(crate) fn slot(&mut self, common: &CommonReader<'_>, row: usize) -> Result<&mut T> {
        let (resource, resource_url) = common.resource(row)?;
        let rkey = group_key(resource.as_ref(), &resource_url);
        let r = match self.resource_index.get(&rkey) {
            Some(&r) => r,
            None => {
                self.resources.push(ResourceGroup {
                    resource,
                    schema_url: resource_url,
                    scopes: Vec::new(),
                });
                let r = self.resources.len() - 1;
                self.resource_index.insert(rkey, r);
                r
            }
        };
        let (scope, scope_url) = common.scope(row)?;
        let skey = (r, group_key(scope.as_ref(), &scope_url));
        let scopes = &mut self.resources[r].scopes;
        let s = match self.scope_index.get(&skey) {
            Some(&s) => s,
            None => {
                scopes.push(ScopeGroup {
                    scope,
                    schema_url: scope_url,
                    items: T::default(),
                });
                let s = scopes.len() - 1;
                self.scope_index.insert(skey, s);
                s
            }
        };
        Ok(&mut scopes[s].items)
    }

    pub(crate) fn finish(self) -> Vec<ResourceGroup<T>> {
        self.resources
    }
}
