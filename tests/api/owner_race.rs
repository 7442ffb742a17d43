//! The last-owner rule under concurrency: two owners acting on each other (or on
//! themselves) at the same moment never leave an organization without an owner.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;
use crate::org_fixture::*;

/// An org whose only owners are the two sessions' users (fresh for every round).
async fn two_owner_org(a: &Session, b: &Session, b_email: &str, round: usize) -> String {
    let (org, _) = create_org(a, "Race", &format!("race-{round}")).await;
    invite_and_join(a, &org, b_email, "owner", b).await;
    org
}

async fn demote(s: &Session, org: &str, user: &str) -> Reply {
    s.send(
        Method::PATCH,
        &format!("/api/v1/orgs/{org}/members/{user}"),
        Some(json!({"role": "admin"})),
    )
    .await
}

async fn owners(s: &Session, org: &str) -> Vec<String> {
    member_roles(s, org)
        .await
        .into_iter()
        .filter(|(_, r)| r == "owner")
        .map(|(id, _)| id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_owners_demoting_each_other_at_once_leave_exactly_one_owner() {
    let app = TestApp::spawn().await;
    let (ua, sa) = new_person(&app, "ann@race.example", "Ann").await;
    let (ub, sb) = new_person(&app, "bob@race.example", "Bob").await;
    let mut codes = Vec::new();
    for round in 0..10 {
        let org = two_owner_org(&sa, &sb, &ub.email, round).await;
        let (ra, rb) = tokio::join!(demote(&sa, &org, &ub.id), demote(&sb, &org, &ua.id));
        let ok = [&ra, &rb]
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(
            ok, 1,
            "round {round}: exactly one demotion may win: {} {} / {} {}",
            ra.status, ra.text, rb.status, rb.text
        );
        let loser = if ra.status == StatusCode::OK {
            &rb
        } else {
            &ra
        };
        // The loser was no longer an owner when their change ran (403 owner_protected),
        // or was still one but would have removed the last owner (409 last_owner).
        assert!(
            (loser.status == StatusCode::FORBIDDEN && loser.code() == "owner_protected")
                || (loser.status == StatusCode::CONFLICT && loser.code() == "last_owner"),
            "round {round}: loser got {} {}",
            loser.status,
            loser.text
        );
        codes.push(loser.code().to_string());
        let winner = if ra.status == StatusCode::OK {
            &sa
        } else {
            &sb
        };
        let left = owners(winner, &org).await;
        assert_eq!(left.len(), 1, "round {round}: owners {left:?}");
    }
    eprintln!("losing codes over 10 rounds: {codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_owners_stepping_down_at_once_leave_exactly_one_owner() {
    let app = TestApp::spawn().await;
    let (ua, sa) = new_person(&app, "ann@race.example", "Ann").await;
    let (ub, sb) = new_person(&app, "bob@race.example", "Bob").await;
    for round in 0..10 {
        let org = two_owner_org(&sa, &sb, &ub.email, round).await;
        let (ra, rb) = tokio::join!(demote(&sa, &org, &ua.id), demote(&sb, &org, &ub.id));
        let mut statuses = [ra.status, rb.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "round {round}: {} / {}",
            ra.text,
            rb.text
        );
        let loser = if ra.status == StatusCode::OK {
            &rb
        } else {
            &ra
        };
        assert_eq!(loser.code(), "last_owner");
        assert_eq!(owners(&sa, &org).await.len(), 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_owners_removing_each_other_at_once_leave_exactly_one_owner() {
    let app = TestApp::spawn().await;
    let (ua, sa) = new_person(&app, "ann@race.example", "Ann").await;
    let (ub, sb) = new_person(&app, "bob@race.example", "Bob").await;
    for round in 0..10 {
        let org = two_owner_org(&sa, &sb, &ub.email, round).await;
        let (pa, pb) = (
            format!("/api/v1/orgs/{org}/members/{}", ub.id),
            format!("/api/v1/orgs/{org}/members/{}", ua.id),
        );
        let (ra, rb) = tokio::join!(sa.delete(&pa), sb.delete(&pb));
        let won = [&ra, &rb]
            .iter()
            .filter(|r| r.status == StatusCode::NO_CONTENT)
            .count();
        assert_eq!(
            won, 1,
            "round {round}: {} {} / {} {}",
            ra.status, ra.text, rb.status, rb.text
        );
        // The loser was removed first: the organization is gone for them (404).
        let loser = if ra.status == StatusCode::NO_CONTENT {
            &rb
        } else {
            &ra
        };
        assert_eq!(
            loser.status,
            StatusCode::NOT_FOUND,
            "round {round}: {}",
            loser.text
        );
        let winner = if ra.status == StatusCode::NO_CONTENT {
            &sa
        } else {
            &sb
        };
        assert_eq!(owners(winner, &org).await.len(), 1, "round {round}");
    }
}
