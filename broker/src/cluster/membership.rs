//! Cluster membership from configuration: `--peers 1=host:port,2=host:port,...`.

use std::collections::BTreeMap;

/// Parses `id=host:port` pairs separated by commas. This node may be listed too; it is
/// separated out by the caller. Addresses are kept exactly as written (they are dialed as
/// given, so a link can pass through a proxy).
pub fn parse_peers(text: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut peers = BTreeMap::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (id, address) = item
            .split_once('=')
            .ok_or_else(|| format!("peer '{item}' is not of the form id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("peer id '{id}' in '{item}' is not a positive number"))?;
        if id == 0 {
            return Err(format!("peer id 0 in '{item}': node ids start at 1"));
        }
        let address = address.trim();
        if address
            .rsplit_once(':')
            .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            return Err(format!(
                "peer address '{address}' in '{item}' is not host:port"
            ));
        }
        if peers.insert(id, address.to_string()).is_some() {
            return Err(format!("peer id {id} is listed twice"));
        }
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_what_is_wrong() {
        let peers = parse_peers("1=127.0.0.1:9093, 2=proxy.local:19001").unwrap();
        assert_eq!(peers[&2], "proxy.local:19001");
        assert!(parse_peers("1=127.0.0.1")
            .unwrap_err()
            .contains("host:port"));
        assert!(parse_peers("x=127.0.0.1:1").unwrap_err().contains("'x'"));
        assert!(parse_peers("1=a:1,1=b:2").unwrap_err().contains("twice"));
        assert!(parse_peers("").unwrap().is_empty());
    }
}
