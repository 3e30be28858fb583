//! The live hub's decisions, as pure functions: the Durable Object (`worker/src/hub.rs`) and the sweep
//! only read and write storage and sockets around them.
//!
//! Vocabulary: `last` is the last sequence number the hub has broadcast; the hub's log holds events
//! for replay (oldest first); the outbox is the D1 `events` table every writer fills in the same
//! transaction as its change.

use crate::event::EventPayload;
use crate::ids::UserId;

/// After a gap fill read the outbox from `last + 1` on and got `first_in_outbox` as its first event:
/// whether the broadcast run must jump past events nobody can get any more, and to which `last`.
///
/// The outbox keeps delivered events only for a while; when it no longer has `last + 1 ..
/// first_in_outbox - 1` and the hub's own log does not either (its oldest held event is not older than
/// `first_in_outbox`), the run continues from `first_in_outbox - 1`. Clients that missed the pruned
/// events are told to resync by the replay plan.
pub fn jump_past_pruned_outbox(
    last: i64,
    first_in_outbox: Option<i64>,
    oldest_in_log: Option<i64>,
) -> Option<i64> {
    let first = first_in_outbox?;
    let missing = first > last + 1;
    let log_has_nothing_older = oldest_in_log.is_none_or(|oldest| oldest > first);
    (missing && log_has_nothing_older).then_some(first - 1)
}

/// Whether a delivered event may enter the hub's log: only one it has not broadcast yet. An event at
/// or below `last` was broadcast already (a re-delivery by the sweep, a duplicate); holding it again
/// could put it back into a log that has pruned its neighbours, and a replay over that log would
/// have a hole.
pub fn worth_holding(last: i64, seq: i64) -> bool {
    seq > last
}

/// The access re-checks a hub still owes: it records `checked` (every broadcast event up to it has
/// had its re-check done) and has broadcast up to `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingAccessCheck {
    Nothing,
    /// Re-check what the events `from..=to` (all still in the log) call for.
    Events {
        from: i64,
        to: i64,
    },
    /// Some of the pending events left the log before their re-check ran: re-check everyone connected.
    EveryoneConnected,
}

/// What the hub must re-check before it may consider `..=last` done. The progress survives a failed
/// re-check (a D1 error, a gap fill that failed half-way), so the next delivery — the writer's next
/// event or the sweep's re-delivery — repeats it.
pub fn pending_access_check(
    checked: i64,
    last: i64,
    oldest_in_log: Option<i64>,
) -> PendingAccessCheck {
    if checked >= last {
        return PendingAccessCheck::Nothing;
    }
    match oldest_in_log {
        Some(oldest) if oldest <= checked + 1 => PendingAccessCheck::Events {
            from: checked + 1,
            to: last,
        },
        _ => PendingAccessCheck::EveryoneConnected,
    }
}

/// The log rows to drop after broadcasting up to `last`: everything at or below the returned seq, so
/// the log keeps the newest `capacity` events for replay.
pub fn prune_log_through(last: i64, capacity: i64) -> i64 {
    last - capacity.max(1)
}

/// Who wrote a change, as far as echo suppression cares: the signed-in user and the client (tab) id
/// they sent. The client id alone is the client's choice — any member could send a colleague's tab
/// id and make the hub skip that colleague's sockets — so only the pair identifies a writer; the
/// user half comes from the session, which nobody can pick. No user or no client id: no key.
pub fn echo_key(user_id: Option<&str>, client_id: Option<&str>) -> Option<String> {
    match (user_id, client_id) {
        (Some(user), Some(client)) if !user.is_empty() && !client.is_empty() => {
            Some(format!("{user}/{client}"))
        }
        _ => None,
    }
}

/// Whether an event written under `event_key` is an echo for a socket opened under `socket_key`
/// (both from [`echo_key`]): the writer's own tab applied the change optimistically and must not get
/// it back. A change with no key (a run, a webhook, a script without a client id) is nobody's echo.
pub fn is_echo(event_key: Option<&str>, socket_key: Option<&str>) -> bool {
    matches!((event_key, socket_key), (Some(event), Some(socket)) if event == socket)
}

/// The tag a hub gives each socket of the user `user_id`, to find them for an access re-check.
pub fn user_tag(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The tag a hub gives a socket opened under the echo key `client_key` ([`echo_key`]).
pub fn client_tag(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// The tag of the sockets a broadcast of an event written under `event_key` skips: exactly the
/// sockets for which [`is_echo`] holds, found by tag instead of by reading every socket's tags.
pub fn echo_tag(event_key: Option<&str>) -> Option<String> {
    event_key.map(client_tag)
}

/// Whose access the hub must re-check after broadcasting some events: a membership change re-checks
/// that user; a workspace change (its access mode may have changed) re-checks everyone connected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRecheck {
    pub users: Vec<UserId>,
    pub everyone_connected: bool,
}

impl AccessRecheck {
    /// The users to look up, sorted and without duplicates; `connected` lists the users with an open
    /// socket and is asked only when everyone must be re-checked.
    pub fn users(self, connected: impl FnOnce() -> Vec<UserId>) -> Vec<UserId> {
        let mut users = self.users;
        if self.everyone_connected {
            users.extend(connected());
        }
        users.sort();
        users.dedup();
        users
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && !self.everyone_connected
    }
}

/// What to re-check after broadcasting `payloads`.
pub fn access_recheck<'a>(payloads: impl IntoIterator<Item = &'a EventPayload>) -> AccessRecheck {
    let mut recheck = AccessRecheck::default();
    for payload in payloads {
        match payload {
            EventPayload::MemberChanged { user_id, .. } => recheck.users.push(user_id.clone()),
            EventPayload::WorkspaceUpdated { .. } => recheck.everyone_connected = true,
            _ => {}
        }
    }
    recheck
}

/// Outbox events younger than this are probably still being delivered inline by their writer, so the
/// sweep leaves them alone.
pub const SWEEP_SETTLE_MS: i64 = 2_000;

/// Delivered events stay in the outbox this long, for hubs that restart from an empty log and fill
/// their gap from it.
pub const OUTBOX_RETAIN_MS: i64 = 7 * 24 * 3600 * 1000;

/// What one sweep at `now` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepWindow {
    /// Undelivered events created before this are redelivered: inline delivery missed them.
    pub redeliver_created_before: i64,
    /// Delivered events created before this are deleted.
    pub prune_delivered_created_before: i64,
}

pub fn sweep_window(now: i64) -> SweepWindow {
    SweepWindow {
        redeliver_created_before: now - SWEEP_SETTLE_MS,
        prune_delivered_created_before: now - OUTBOX_RETAIN_MS,
    }
}

/// Who gets the `stream.presence` list after a socket joined, left, or changed the block it has
/// open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceAudience {
    /// The list changed: every socket gets it.
    Everyone,
    /// The list is the one every socket already has; only the socket that just joined needs it.
    Joiner,
    /// Nothing changed that anyone needs to hear.
    Nobody,
}

/// Every socket gets the presence list only when it differs from the list last sent to everyone
/// (`last_sent_to_everyone`, `None` when unknown, say after the hub woke from hibernation); a
/// socket that just joined always gets it. A person's tenth tab, or a reconnect, changes nobody's
/// list: sending it to every socket anyway made opening n sockets cost n² frames (1,000 sockets:
/// a million frames of up to a hundred people each), which starved the hub.
pub fn presence_audience(
    last_sent_to_everyone: Option<&str>,
    list: &str,
    someone_joined: bool,
) -> PresenceAudience {
    match (last_sent_to_everyone == Some(list), someone_joined) {
        (false, _) => PresenceAudience::Everyone,
        (true, true) => PresenceAudience::Joiner,
        (true, false) => PresenceAudience::Nobody,
    }
}

/// Whether a socket joining can change the presence list: only when its person had no socket open
/// yet. A new socket has no block open, and a person already listed (with or without blocks) is not
/// listed again for it — so the hub hands the joiner the last list without rebuilding it from every
/// socket's attachment (which made opening n sockets cost n² reads).
pub fn join_changes_presence(other_open_sockets_of_person: usize) -> bool {
    other_open_sockets_of_person == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_persons_first_socket_can_change_the_presence_list() {
        use crate::stream::{PresentPerson, presence_list};
        let person = |user: &str, block: Option<&str>| PresentPerson {
            login: user.to_owned(),
            user_id: user.to_owned(),
            block_id: block.map(|block| crate::ids::BlockId::parse(block).unwrap()),
        };
        let block = "blk_00000000000000aa";
        // Whatever the person's other sockets have open, one more socket with nothing open leaves
        // the list as it was.
        for others in [
            vec![person("ann", None)],
            vec![person("ann", Some(block))],
            vec![person("ann", None), person("ann", Some(block))],
        ] {
            let before = presence_list(others.clone());
            let mut after = others.clone();
            after.push(person("ann", None));
            assert!(!join_changes_presence(others.len()));
            assert_eq!(presence_list(after), before);
        }
        assert!(join_changes_presence(0));
        assert_ne!(
            presence_list([person("ann", None)]),
            presence_list([person("ann", None), person("bob", None)])
        );
    }

    #[test]
    fn presence_goes_to_everyone_only_when_the_list_changed() {
        assert_eq!(
            presence_audience(None, "[a]", true),
            PresenceAudience::Everyone,
            "unknown last list: everyone, to be sure"
        );
        assert_eq!(
            presence_audience(Some("[a]"), "[a,b]", true),
            PresenceAudience::Everyone
        );
        assert_eq!(
            presence_audience(Some("[a,b]"), "[a]", false),
            PresenceAudience::Everyone,
            "someone left"
        );
        assert_eq!(
            presence_audience(Some("[a]"), "[a]", true),
            PresenceAudience::Joiner,
            "another tab of someone already listed"
        );
        assert_eq!(
            presence_audience(Some("[a]"), "[a]", false),
            PresenceAudience::Nobody,
            "one of several tabs closed"
        );
    }
    use crate::access::WorkspaceRole;

    #[test]
    fn the_run_jumps_only_past_events_that_neither_the_outbox_nor_the_log_has() {
        // Nothing missing: the outbox continues right after `last`.
        assert_eq!(jump_past_pruned_outbox(10, Some(11), None), None);
        // The outbox starts at 15 and the log has nothing older: 11..14 are gone for good.
        assert_eq!(jump_past_pruned_outbox(10, Some(15), None), Some(14));
        assert_eq!(jump_past_pruned_outbox(10, Some(15), Some(16)), Some(14));
        // The log still has older events (they are in flight to the broadcast): no jump.
        assert_eq!(jump_past_pruned_outbox(10, Some(15), Some(12)), None);
        // An empty outbox read: nothing to decide.
        assert_eq!(jump_past_pruned_outbox(10, None, None), None);
    }

    #[test]
    fn only_events_after_the_last_broadcast_are_held() {
        assert!(worth_holding(10, 11));
        assert!(!worth_holding(10, 10));
        assert!(!worth_holding(10, 3), "a re-delivered old range stays out");
    }

    #[test]
    fn owed_access_checks_survive_until_done() {
        assert_eq!(
            pending_access_check(10, 10, Some(1)),
            PendingAccessCheck::Nothing
        );
        assert_eq!(
            pending_access_check(7, 10, Some(1)),
            PendingAccessCheck::Events { from: 8, to: 10 }
        );
        assert_eq!(
            pending_access_check(7, 10, Some(8)),
            PendingAccessCheck::Events { from: 8, to: 10 }
        );
        // Event 8 was pruned before its check ran: nobody knows whose access it changed.
        assert_eq!(
            pending_access_check(7, 10, Some(9)),
            PendingAccessCheck::EveryoneConnected
        );
        assert_eq!(
            pending_access_check(7, 10, None),
            PendingAccessCheck::EveryoneConnected
        );
    }

    #[test]
    fn the_log_keeps_the_newest_capacity_events() {
        assert_eq!(prune_log_through(2_500, 2_000), 500);
        assert!(
            prune_log_through(10, 2_000) < 0,
            "a young log drops nothing"
        );
        assert_eq!(
            prune_log_through(10, 0),
            9,
            "a zero capacity still keeps the last event"
        );
    }

    #[test]
    fn a_client_id_spares_only_its_own_users_sockets() {
        let mallory_as_alice_tab = echo_key(Some("usr_mallory"), Some("alice-tab"));
        let alice_tab = echo_key(Some("usr_alice"), Some("alice-tab"));
        assert_ne!(mallory_as_alice_tab, alice_tab);
        assert!(!is_echo(
            mallory_as_alice_tab.as_deref(),
            alice_tab.as_deref()
        ));
        assert!(is_echo(alice_tab.as_deref(), alice_tab.as_deref()));
        assert_eq!(echo_key(None, Some("tab")), None);
        assert_eq!(echo_key(Some("usr_alice"), None), None);
        assert_eq!(echo_key(Some("usr_alice"), Some("")), None);
    }

    #[test]
    fn only_the_writing_client_is_spared_its_echo() {
        assert!(is_echo(Some("tab-1"), Some("tab-1")));
        assert!(!is_echo(Some("tab-1"), Some("tab-2")));
        assert!(!is_echo(Some("tab-1"), None));
        assert!(!is_echo(None, Some("tab-1")));
        assert!(!is_echo(None, None));
    }

    #[test]
    fn the_echo_tag_names_exactly_the_sockets_is_echo_skips() {
        for origin in [None, Some("tab-1"), Some("tab-2")] {
            for client in [None, Some("tab-1"), Some("tab-2")] {
                let tagged = client.map(client_tag);
                let skipped = echo_tag(origin).is_some() && echo_tag(origin) == tagged;
                assert_eq!(skipped, is_echo(origin, client), "{origin:?} / {client:?}");
            }
        }
        assert_eq!(user_tag("usr_1"), "user:usr_1");
    }

    #[test]
    fn membership_changes_recheck_that_user_and_workspace_changes_recheck_everyone() {
        let alice = UserId::from_random([1; 8]);
        let bob = UserId::from_random([2; 8]);
        let member = EventPayload::MemberChanged {
            user_id: alice.clone(),
            role: Some(WorkspaceRole::Viewer),
        };
        let edge = EventPayload::EdgeDeleted {
            edge_id: crate::ids::EdgeId::from_random([3; 8]),
        };
        let recheck = access_recheck([&member, &edge, &member]);
        assert!(!recheck.everyone_connected);
        let mut asked = false;
        assert_eq!(
            recheck.users(|| {
                asked = true;
                vec![bob.clone()]
            }),
            vec![alice.clone()]
        );
        assert!(!asked, "connected users are only listed when needed");

        assert!(access_recheck([&edge]).is_empty());

        let workspace = EventPayload::WorkspaceUpdated {
            workspace: crate::api::workspaces::Workspace {
                id: crate::ids::WorkspaceId::from_random([4; 8]),
                account_id: crate::ids::AccountId::from_random([5; 8]),
                name: "w".to_owned(),
                access_mode: crate::access::AccessMode::Restricted,
                default_model_id: None,
                created_at: 0,
                updated_at: 0,
            },
        };
        let everyone = access_recheck([&workspace, &member]);
        assert_eq!(
            everyone.users(|| vec![bob.clone(), alice.clone()]),
            vec![alice, bob]
        );
    }

    #[test]
    fn the_sweep_leaves_young_events_to_their_writer() {
        let window = sweep_window(1_000_000_000);
        assert_eq!(
            window.redeliver_created_before,
            1_000_000_000 - SWEEP_SETTLE_MS
        );
        assert_eq!(
            window.prune_delivered_created_before,
            1_000_000_000 - OUTBOX_RETAIN_MS
        );
    }
}
