//! Who else is on the board, as the toolbar shows them: one avatar per person (not you), with the
//! blocks they have open.

use std::collections::BTreeMap;

use domain::ids::BlockId;
use domain::stream::PresentPerson;

/// One other person on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherPerson {
    pub login: String,
    /// Up to two letters for the avatar.
    pub initials: String,
    pub blocks: Vec<BlockId>,
    /// The hover text: who, and what they have open.
    pub title: String,
}

/// The others on the board from a `stream.presence` list (`me`: your user id), with `title_of`
/// naming blocks.
pub fn others(
    people: &[PresentPerson],
    me: Option<&str>,
    title_of: impl Fn(&BlockId) -> Option<String>,
) -> Vec<OtherPerson> {
    let mut out: Vec<OtherPerson> = Vec::new();
    for person in people {
        if Some(person.user_id.as_str()) == me {
            continue;
        }
        let entry = match out.iter_mut().find(|other| other.login == person.login) {
            Some(entry) => entry,
            None => {
                out.push(OtherPerson {
                    login: person.login.clone(),
                    initials: person
                        .login
                        .chars()
                        .filter(|c| c.is_alphanumeric())
                        .take(2)
                        .collect::<String>()
                        .to_uppercase(),
                    blocks: Vec::new(),
                    title: String::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        if let Some(block) = &person.block_id {
            entry.blocks.push(block.clone());
        }
    }
    for other in &mut out {
        let open: Vec<String> = other
            .blocks
            .iter()
            .filter_map(&title_of)
            .map(|title| format!("“{title}”"))
            .collect();
        other.title = if open.is_empty() {
            format!("{} is on this board", other.login)
        } else {
            format!("{} has {} open", other.login, open.join(", "))
        };
    }
    out
}

/// A marker on a card that someone else has open: their initials (up to three people, then "+N").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMarker {
    pub initials: Vec<String>,
    /// How many more have it open than the initials show.
    pub more: usize,
    /// The hover text: who has it open.
    pub title: String,
    /// The logins, comma-joined (what a test or a screen reader reads).
    pub logins: String,
}

/// How many people's initials a card's marker shows before "+N".
const MARKER_INITIALS: usize = 3;

/// The marker each block someone else has open carries on its card, by block.
pub fn open_markers(others: &[OtherPerson]) -> BTreeMap<BlockId, OpenMarker> {
    let mut by_block: BTreeMap<BlockId, Vec<&OtherPerson>> = BTreeMap::new();
    for other in others {
        for block in &other.blocks {
            let people = by_block.entry(block.clone()).or_default();
            if !people.iter().any(|person| person.login == other.login) {
                people.push(other);
            }
        }
    }
    by_block
        .into_iter()
        .map(|(block, people)| {
            let logins: Vec<&str> = people.iter().map(|person| person.login.as_str()).collect();
            let marker = OpenMarker {
                initials: people
                    .iter()
                    .take(MARKER_INITIALS)
                    .map(|person| person.initials.clone())
                    .collect(),
                more: people.len().saturating_sub(MARKER_INITIALS),
                title: format!(
                    "{} {} this open",
                    logins.join(", "),
                    if logins.len() == 1 { "has" } else { "have" }
                ),
                logins: logins.join(","),
            };
            (block, marker)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn others_are_listed_once_with_what_they_have_open_and_you_are_left_out() {
        let block = BlockId::from_random([1; 8]);
        let person = |login: &str, block: Option<&BlockId>| PresentPerson {
            login: login.to_owned(),
            user_id: format!("usr_{login}"),
            block_id: block.cloned(),
        };
        let people = [
            person("alice-w", Some(&block)),
            person("bob", None),
            person("me", Some(&block)),
        ];
        let listed = others(&people, Some("usr_me"), |id| {
            (id == &block).then(|| "Fix the greeting".to_owned())
        });
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].initials, "AL");
        assert_eq!(listed[0].title, "alice-w has “Fix the greeting” open");
        assert_eq!(listed[1].title, "bob is on this board");
    }

    #[test]
    fn a_card_someone_else_has_open_carries_their_initials_once_each() {
        let open = BlockId::from_random([1; 8]);
        let closed = BlockId::from_random([2; 8]);
        let person = |login: &str, block: Option<&BlockId>| PresentPerson {
            login: login.to_owned(),
            user_id: format!("usr_{login}"),
            block_id: block.cloned(),
        };
        // alice has the block open in two tabs; bob too; carol has nothing open; five more have it open.
        let mut people = vec![
            person("alice", Some(&open)),
            person("alice", Some(&open)),
            person("bob", Some(&open)),
            person("carol", None),
        ];
        let markers = open_markers(&others(&people, None, |_| None));
        assert_eq!(markers.len(), 1, "only the open block gets a marker");
        assert!(!markers.contains_key(&closed));
        let marker = &markers[&open];
        assert_eq!(marker.initials, vec!["AL".to_owned(), "BO".to_owned()]);
        assert_eq!(marker.more, 0);
        assert_eq!(marker.title, "alice, bob have this open");
        assert_eq!(marker.logins, "alice,bob");

        people.extend(["dan", "eve", "fay"].map(|login| person(login, Some(&open))));
        let markers = open_markers(&others(&people, None, |_| None));
        assert_eq!(markers[&open].initials.len(), 3);
        assert_eq!(markers[&open].more, 2, "+2 beyond the three initials shown");
    }
}
