//! Sprig's `getHostByName` (Masterminds/sprig v3.2.3's `network.go`): one of a host's
//! addresses, looked up by the system's resolver and bounded in time.

use std::collections::BTreeSet;
use std::net::{IpAddr, ToSocketAddrs as _};
use std::time::Duration;

use gotmpl::Value;

use super::super::text;
use super::{Costs, one, random_below};
use crate::template::consul::helpers::go::fail;

/// How long a lookup may take before the render fails: a template waits on it.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// `getHostByName NAME`: one of NAME's addresses, drawn at random as Sprig draws it (Go's
/// `net.LookupHost`: `/etc/hosts`, then DNS). Where Go panics on a name without addresses,
/// the render fails naming the host.
pub(super) fn get_host_by_name(costs: &Costs, args: &[Value]) -> gotmpl::Result<Value> {
    const F: &str = "getHostByName";
    let name = one(F, args)?.to_owned();
    costs.lookup(F)?;
    let (sender, receiver) = std::sync::mpsc::channel();
    let host = name.clone();
    // The system's resolver cannot be cancelled: it runs on a thread of its own, which ends
    // with the resolver's own timeout when this one gives up first.
    std::thread::Builder::new()
        .name("getHostByName".into())
        .spawn(move || {
            let found = (host.as_str(), 0)
                .to_socket_addrs()
                .map(|addresses| addresses.map(|a| a.ip()).collect::<BTreeSet<IpAddr>>());
            let _ = sender.send(found);
        })
        .map_err(|_| fail(F, "cannot start a thread for the lookup"))?;
    let addresses: Vec<IpAddr> = match receiver.recv_timeout(LOOKUP_TIMEOUT) {
        Ok(Ok(found)) => found.into_iter().collect(),
        Ok(Err(e)) => return Err(fail(F, format!("cannot resolve {name:?}: {e}"))),
        Err(_) => {
            return Err(fail(
                F,
                format!(
                    "resolving {name:?} took longer than {} s",
                    LOOKUP_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    if addresses.is_empty() {
        return Err(fail(F, format!("{name:?} has no addresses")));
    }
    let pick = random_below(F, addresses.len() as u64)?;
    let chosen = usize::try_from(pick).map_or(addresses[0], |i| addresses[i]);
    Ok(text(&chosen.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_resolves_to_a_loopback_address() {
        let costs = Costs::default();
        let found = get_host_by_name(&costs, &[Value::String("localhost".into())])
            .expect("resolves")
            .to_string();
        let ip: IpAddr = found.parse().expect("an address");
        assert!(ip.is_loopback(), "{found}");
    }

    #[test]
    fn an_unknown_host_fails_naming_it() {
        let costs = Costs::default();
        let name = "no-such-host.invalid";
        let e = get_host_by_name(&costs, &[Value::String(name.into())]).expect_err("unknown");
        assert!(e.to_string().contains(name), "{e}");
    }
}
