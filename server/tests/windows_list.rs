//! The session list's combined filters (each backend seeks one index and filters the rest: SQLite is told
//! which with a unary `+`): every combination of user, host, exit and state answers exactly the sessions a
//! plain filter over all of them finds, newest first, across cursor pages.

mod support;

use support::Server;

#[test]
fn combined_filters_answer_what_filtering_everything_answers() {
    let s = Server::start();
    let hosts = [s.token("web-1", "host"), s.token("db-1", "host")];
    let aud = s.token("aud", "auditor");
    // (id, user, host index, exit status or live)
    let mut all = Vec::new();
    for i in 0..18u32 {
        let id = format!("c{i:02}");
        let user = ["alice", "bob", "carol"][i as usize % 3];
        let h = (i as usize / 3) % 2;
        let mut body = support::create_body(&id, user);
        body["started_at"] = format!("2026-01-{:02}T10:00:00Z", i + 1).into();
        let bytes = serde_json::to_vec(&body).unwrap();
        let r = s
            .req("POST", "/api/v1/sessions", &hosts[h])
            .header("content-type", "application/json")
            .body(bytes.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        let exit = (i % 4 != 3).then_some((i % 2) as i32);
        if let Some(code) = exit {
            assert_eq!(s.chunk(&hosts[h], &id, 0, support::HEADER, Some(&bytes)).status(), 201);
            let end =
                serde_json::json!({"ended_at": "2026-02-01T00:00:00Z", "exit_status": code, "last_seq": 0});
            let r =
                s.req("POST", &format!("/api/v1/sessions/{id}/end"), &hosts[h]).json(&end).send().unwrap();
            assert_eq!(r.status(), 200);
        }
        all.push((id, user, ["web-1", "db-1"][h], exit));
    }
    all.reverse(); // newest first
    for user in [None, Some("alice"), Some("bob")] {
        for host in [None, Some("web-1"), Some("db-1")] {
            for exit in [None, Some(0), Some(1)] {
                for state in [None, Some("live"), Some("complete")] {
                    let want: Vec<&str> = all
                        .iter()
                        .filter(|(_, u, h, e)| {
                            user.is_none_or(|x| x == *u)
                                && host.is_none_or(|x| x == *h)
                                && exit.is_none_or(|x| *e == Some(x))
                                && state.is_none_or(|x| (x == "live") == e.is_none())
                        })
                        .map(|(id, ..)| id.as_str())
                        .collect();
                    let mut q = String::from("limit=2");
                    for (k, v) in [("user", user), ("host", host), ("state", state)] {
                        if let Some(v) = v {
                            q.push_str(&format!("&{k}={v}"));
                        }
                    }
                    if let Some(e) = exit {
                        q.push_str(&format!("&exit={e}"));
                    }
                    // Every page, two at a time.
                    let mut got = Vec::new();
                    let mut cursor = String::new();
                    loop {
                        let (status, v) = s.get_json(&aud, &format!("/api/v1/sessions?{q}{cursor}"));
                        assert_eq!(status, 200, "{q}: {v}");
                        for x in v["sessions"].as_array().unwrap() {
                            got.push(x["id"].as_str().unwrap().to_string());
                        }
                        match v["next_cursor"].as_str() {
                            Some(c) => cursor = format!("&cursor={c}"),
                            None => break,
                        }
                    }
                    assert_eq!(got, want, "{q}");
                }
            }
        }
    }
}
