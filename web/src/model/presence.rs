//! Who else is on the board, as the toolbar shows them: one avatar per person (not you), with the
//! blocks they have open.

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
}
