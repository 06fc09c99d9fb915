//! Who may connect: `SO_PEERCRED` uid/gid checks and the optional team name prefixes.

use relay_config::AuthSection;
use tokio::net::unix::UCred;

/// The credentials of an accepted peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<u32>,
    /// Index of the matching team in the config, when teams are configured.
    pub team: Option<usize>,
}

/// The connection policy, built from `[auth]`.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    own_uid: u32,
    config: AuthSection,
}

impl AuthPolicy {
    pub fn new(config: AuthSection) -> Self {
        // SAFETY: getuid has no preconditions and cannot fail.
        let own_uid = unsafe { libc::getuid() };
        AuthPolicy { own_uid, config }
    }

    /// Admits the daemon's own uid, any allow-listed uid/gid, and members of a team.
    pub fn check_peer(&self, cred: Option<UCred>) -> Result<Peer, String> {
        let Some(cred) = cred else {
            return Err(
                "cannot read the peer's credentials (SO_PEERCRED); refusing the connection".into(),
            );
        };
        let (uid, gid) = (cred.uid(), cred.gid());
        let pid = cred.pid().and_then(|p| u32::try_from(p).ok());
        let team = self
            .config
            .teams
            .iter()
            .position(|t| t.uids.contains(&uid) || t.gids.contains(&gid));
        let allowed = uid == self.own_uid
            || self.config.allow_uids.contains(&uid)
            || self.config.allow_gids.contains(&gid)
            || team.is_some();
        if !allowed {
            return Err(format!(
                "UID {uid} / GID {gid} is not allowed to connect; add it to [auth] allow_uids, allow_gids or a team"
            ));
        }
        Ok(Peer {
            uid,
            gid,
            pid,
            team,
        })
    }

    /// Applies the team's name prefix, if the peer was admitted through a team.
    pub fn check_name(&self, peer: &Peer, name: &str) -> Result<(), String> {
        let Some(team) = peer.team.and_then(|i| self.config.teams.get(i)) else {
            return Ok(());
        };
        if team.allow_any_name
            || team.agent_prefix.is_empty()
            || name.starts_with(&team.agent_prefix)
        {
            Ok(())
        } else {
            Err(format!(
                "Agent name must start with \"{}\" for team {}",
                team.agent_prefix, team.name
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_config::TeamConfig;

    #[test]
    fn team_prefixes_apply_only_to_team_members() {
        let policy = AuthPolicy::new(AuthSection {
            teams: vec![TeamConfig {
                name: "qa".into(),
                uids: vec![4242],
                agent_prefix: "qa-".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let team_peer = Peer {
            uid: 4242,
            gid: 1,
            pid: None,
            team: Some(0),
        };
        assert!(policy.check_name(&team_peer, "qa-bot").is_ok());
        let err = policy.check_name(&team_peer, "bot").unwrap_err();
        assert!(err.contains("must start with \"qa-\""));
        let own = Peer {
            uid: 0,
            gid: 0,
            pid: None,
            team: None,
        };
        assert!(policy.check_name(&own, "anything").is_ok());
    }
}
