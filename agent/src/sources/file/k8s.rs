//! Kubernetes metadata from the path of a container log file, as resource attributes.
//!
//! Two layouts are recognised, anywhere in the path (so a node's `/var/log` mounted elsewhere
//! works too):
//! - `.../pods/<namespace>_<pod>_<uid>/<container>/<restart>.log` (the kubelet's own files);
//! - `.../containers/<pod>_<namespace>_<container>-<container id>.log` (the symlinks to them).

use std::path::Path;

/// What the path tells of the container whose log it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLog {
    pub namespace: String,
    pub pod: String,
    pub uid: Option<String>,
    pub container: String,
    pub restart_count: Option<u32>,
    pub container_id: Option<String>,
}

impl PodLog {
    /// Resource attributes, OpenTelemetry semantic conventions.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("k8s.namespace.name", self.namespace.clone()),
            ("k8s.pod.name", self.pod.clone()),
            ("k8s.container.name", self.container.clone()),
        ];
        if let Some(uid) = &self.uid {
            out.push(("k8s.pod.uid", uid.clone()));
        }
        if let Some(n) = self.restart_count {
            out.push(("k8s.container.restart_count", n.to_string()));
        }
        if let Some(id) = &self.container_id {
            out.push(("container.id", id.clone()));
        }
        out
    }
}

/// The pod log a path is, if it follows one of the layouts.
pub fn pod_log(path: &Path) -> Option<PodLog> {
    let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    let n = parts.len();
    if n >= 4 && parts[n - 4] == "pods" {
        let restart = parts[n - 1].strip_suffix(".log")?;
        let mut dir = parts[n - 3].splitn(3, '_');
        let (namespace, pod, uid) = (dir.next()?, dir.next()?, dir.next()?);
        if namespace.is_empty() || pod.is_empty() || uid.is_empty() || parts[n - 2].is_empty() {
            return None;
        }
        return Some(PodLog {
            namespace: namespace.into(),
            pod: pod.into(),
            uid: Some(uid.into()),
            container: parts[n - 2].into(),
            restart_count: restart.parse().ok(),
            container_id: None,
        });
    }
    if n >= 2 && parts[n - 2] == "containers" {
        let stem = parts[n - 1].strip_suffix(".log")?;
        let mut it = stem.splitn(3, '_');
        let (pod, namespace, rest) = (it.next()?, it.next()?, it.next()?);
        let (container, id) = rest.rsplit_once('-')?;
        if pod.is_empty() || namespace.is_empty() || container.is_empty() || id.len() < 12 {
            return None;
        }
        return Some(PodLog {
            namespace: namespace.into(),
            pod: pod.into(),
            uid: None,
            container: container.into(),
            restart_count: None,
            container_id: Some(id.into()),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_pod_log_paths() {
        let p = pod_log(Path::new(
            "/var/log/pods/shop_checkout-7d9f_5e1c2a9b-0000-4e5f-9a1b-1234567890ab/server/3.log",
        ))
        .expect("a pod log");
        assert_eq!(p.namespace, "shop");
        assert_eq!(p.pod, "checkout-7d9f");
        assert_eq!(
            p.uid.as_deref(),
            Some("5e1c2a9b-0000-4e5f-9a1b-1234567890ab")
        );
        assert_eq!(p.container, "server");
        assert_eq!(p.restart_count, Some(3));
        let c = pod_log(Path::new(
            "/var/log/containers/checkout-7d9f_shop_server-0123456789abcdef0123.log",
        ))
        .expect("a container log");
        assert_eq!(
            (c.pod.as_str(), c.namespace.as_str(), c.container.as_str()),
            ("checkout-7d9f", "shop", "server")
        );
        assert_eq!(pod_log(Path::new("/var/log/syslog")), None);
        assert_eq!(pod_log(Path::new("/var/log/pods/bad/x/0.log")), None);
    }
}
