//! The items API against the contract's "Items" section: ownership, validation, sanitizing,
//! escaping, literal search and the FastAPI-shaped errors.

use reqwest::{Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, INVALID_TOKEN, TestApp, assert_unauthorized, json_with_status, only_error, spawn_app,
};
use crate::test_both;

/// How many items the caller owns (read back through the API).
async fn count_items(app: &TestApp, token: &str) -> i64 {
    let body = json_with_status(app.list_items(token, "").await, 200).await;
    body["total"].as_i64().expect("total")
}

/// The names of a list response, in order.
fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Creates an item with this body, which must succeed.
async fn created(app: &TestApp, token: &str, body: Value) -> Value {
    json_with_status(app.create_item(token, &body).await, 201).await
}

// --- Create -------------------------------------------------------------------------------

async fn creating_an_item_answers_201_with_every_field(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (alice_id, token) = app.user_with_token("alice", &[]).await;

    // Act
    let response = app
        .create_item(
            &token,
            &json!({"name": "Hat", "description": "<b>warm</b>", "price": 10.5, "tax": 2.25}),
        )
        .await;

    // Assert
    let item = json_with_status(response, 201).await;
    let keys: std::collections::BTreeSet<&str> = item
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let expected_keys = [
        "id",
        "name",
        "description",
        "price",
        "tax",
        "price_with_tax",
        "owner_id",
        "created_at",
        "updated_at",
    ];
    assert_eq!(keys, expected_keys.into_iter().collect(), "{item}");
    assert!(item["id"].as_i64().is_some(), "{item}");
    assert_eq!(item["name"], "Hat");
    assert_eq!(item["description"], "<b>warm</b>");
    assert_eq!(item["price"], json!(10.5));
    assert_eq!(item["tax"], json!(2.25));
    assert_eq!(item["price_with_tax"], json!(12.75));
    assert_eq!(item["owner_id"], json!(alice_id));
    let created_at = item["created_at"].as_str().expect("created_at is a string");
    let updated_at = item["updated_at"].as_str().expect("updated_at is a string");
    for stamp in [created_at, updated_at] {
        assert!(
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "not RFC 3339: {stamp}"
        );
    }
    assert_eq!(created_at, updated_at);
}
test_both!(creating_an_item_answers_201_with_every_field);

async fn an_item_without_tax_costs_its_price_with_tax(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let item = created(&app, &token, json!({"name": "Pen", "price": 3.5})).await;

    // Assert
    assert_eq!(item["tax"], Value::Null);
    assert_eq!(item["description"], Value::Null);
    assert_eq!(item["price_with_tax"], json!(3.5));
}
test_both!(an_item_without_tax_costs_its_price_with_tax);

async fn a_201_means_the_item_is_committed_and_can_be_read_back(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let item = created(
        &app,
        &token,
        json!({"name": "Lamp", "price": 20.0, "tax": 0.0}),
    )
    .await;

    // Assert: through the API and straight from the database.
    let read = json_with_status(app.get_item(&token, &item["id"]).await, 200).await;
    assert_eq!(read, item);
    let list = json_with_status(app.list_items(&token, "").await, 200).await;
    assert_eq!(list, json!({"items": [item.clone()], "total": 1}));
    let id = item["id"].as_i64().expect("id");
    let owner = item["owner_id"].as_i64().expect("owner");
    let stored = app
        .state
        .repo
        .get_item(id, owner, false)
        .await
        .expect("db read")
        .expect("row exists");
    assert_eq!(stored.fields.name, "Lamp");
    assert_eq!(stored.fields.tax, Some(0.0));
}
test_both!(a_201_means_the_item_is_committed_and_can_be_read_back);

// --- List ---------------------------------------------------------------------------------

async fn listing_returns_only_the_callers_own_items_with_their_total(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, alice) = app.user_with_token("alice", &[]).await;
    let (_, bob) = app.user_with_token("bob", &[]).await;
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let a1 = app.new_item(&alice, "alice one").await;
    let a2 = app.new_item(&alice, "alice two").await;
    app.new_item(&bob, "bob one").await;

    // Act
    let alices = json_with_status(app.list_items(&alice, "").await, 200).await;
    let bobs = json_with_status(app.list_items(&bob, "").await, 200).await;
    let admins = json_with_status(app.list_items(&admin, "").await, 200).await;

    // Assert
    assert_eq!(alices, json!({"items": [a1, a2], "total": 2}));
    assert_eq!(names(&bobs), ["bob one"]);
    assert_eq!(bobs["total"], 1);
    // Even an admin's list is their own items only.
    assert_eq!(admins, json!({"items": [], "total": 0}));
}
test_both!(listing_returns_only_the_callers_own_items_with_their_total);

async fn q_matches_a_substring_of_the_name(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    for name in ["red hat", "blue hat", "red shoe"] {
        app.new_item(&token, name).await;
    }

    // Act
    let hats = json_with_status(app.list_items(&token, "?q=hat").await, 200).await;
    let reds = json_with_status(app.list_items(&token, "?q=d%20s").await, 200).await;
    let none = json_with_status(app.list_items(&token, "?q=green").await, 200).await;

    // Assert
    assert_eq!(names(&hats), ["red hat", "blue hat"]);
    assert_eq!(hats["total"], 2);
    assert_eq!(names(&reds), ["red shoe"]);
    assert_eq!(none, json!({"items": [], "total": 0}));
}
test_both!(q_matches_a_substring_of_the_name);

async fn q_treats_percent_as_a_literal_character(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    app.new_item(&token, "100%").await;
    app.new_item(&token, "100x").await;

    // Act
    let percent = json_with_status(app.list_items(&token, "?q=%25").await, 200).await;
    let hundred_percent = json_with_status(app.list_items(&token, "?q=0%25").await, 200).await;

    // Assert
    assert_eq!(names(&percent), ["100%"]);
    assert_eq!(percent["total"], 1);
    assert_eq!(names(&hundred_percent), ["100%"]);
}
test_both!(q_treats_percent_as_a_literal_character);

async fn q_treats_underscore_as_a_literal_character(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    app.new_item(&token, "a_b").await;
    app.new_item(&token, "axb").await;

    // Act
    let list = json_with_status(app.list_items(&token, "?q=a_b").await, 200).await;
    let underscore = json_with_status(app.list_items(&token, "?q=_").await, 200).await;

    // Assert
    assert_eq!(names(&list), ["a_b"]);
    assert_eq!(list["total"], 1);
    assert_eq!(names(&underscore), ["a_b"]);
}
test_both!(q_treats_underscore_as_a_literal_character);

async fn q_treats_backslash_as_a_literal_character(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    app.new_item(&token, r"C:\temp").await;
    app.new_item(&token, "C:temp").await;
    app.new_item(&token, "50%").await;

    // Act: `\` alone, and `\%` (which an unescaped LIKE would read as a literal `%`).
    let backslash = json_with_status(app.list_items(&token, "?q=%5C").await, 200).await;
    let escaped_percent = json_with_status(app.list_items(&token, "?q=%5C%25").await, 200).await;

    // Assert
    assert_eq!(names(&backslash), [r"C:\temp"]);
    assert_eq!(escaped_percent, json!({"items": [], "total": 0}));
}
test_both!(q_treats_backslash_as_a_literal_character);

async fn sql_looking_queries_are_matched_literally(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, alice) = app.user_with_token("alice", &[]).await;
    let (_, bob) = app.user_with_token("bob", &[]).await;
    app.new_item(&alice, "plain").await;
    app.new_item(&bob, "bob's").await;

    // Act
    let injected = json_with_status(
        app.list_items(&alice, "?q=%27%20OR%201%3D1%20--").await,
        200,
    )
    .await;
    let quote = json_with_status(app.list_items(&bob, "?q=%27").await, 200).await;

    // Assert
    assert_eq!(injected, json!({"items": [], "total": 0}));
    assert_eq!(names(&quote), ["bob's"]);
    assert_eq!(count_items(&app, &alice).await, 1);
}
test_both!(sql_looking_queries_are_matched_literally);

async fn limit_defaults_to_20_while_total_counts_every_match(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    for i in 0..25 {
        app.new_item(&token, &format!("item {i:02}")).await;
    }

    // Act
    let page = json_with_status(app.list_items(&token, "").await, 200).await;
    let all = json_with_status(app.list_items(&token, "?limit=100").await, 200).await;

    // Assert
    assert_eq!(page["items"].as_array().expect("items").len(), 20);
    assert_eq!(page["total"], 25);
    assert_eq!(all["items"].as_array().expect("items").len(), 25);
    assert_eq!(all["total"], 25);
}
test_both!(limit_defaults_to_20_while_total_counts_every_match);

async fn limit_and_offset_page_through_every_item_once(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    for name in ["a", "b", "c", "d", "e"] {
        app.new_item(&token, name).await;
    }

    // Act
    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let query = format!("?limit=2&offset={offset}");
        let page = json_with_status(app.list_items(&token, &query).await, 200).await;
        assert_eq!(page["total"], 5, "{query}");
        seen.extend(names(&page));
    }
    let past_the_end = json_with_status(app.list_items(&token, "?offset=5").await, 200).await;
    let one = json_with_status(app.list_items(&token, "?limit=1").await, 200).await;

    // Assert
    seen.sort();
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(past_the_end, json!({"items": [], "total": 5}));
    assert_eq!(one["items"].as_array().expect("items").len(), 1);
}
test_both!(limit_and_offset_page_through_every_item_once);

async fn a_limit_outside_1_to_100_is_422_at_query_limit(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let zero = only_error(app.list_items(&token, "?limit=0").await).await;
    let too_many = only_error(app.list_items(&token, "?limit=101").await).await;
    let negative = only_error(app.list_items(&token, "?limit=-5").await).await;

    // Assert
    assert_eq!(
        zero,
        json!({"type": "greater_than_equal", "loc": ["query", "limit"],
               "msg": "Input should be greater than or equal to 1", "input": "0", "ctx": {"ge": 1}})
    );
    assert_eq!(
        too_many,
        json!({"type": "less_than_equal", "loc": ["query", "limit"],
               "msg": "Input should be less than or equal to 100", "input": "101", "ctx": {"le": 100}})
    );
    assert_eq!(negative["loc"], json!(["query", "limit"]));
    assert_eq!(negative["type"], "greater_than_equal");
}
test_both!(a_limit_outside_1_to_100_is_422_at_query_limit);

async fn a_negative_offset_is_422_at_query_offset(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let error = only_error(app.list_items(&token, "?offset=-1").await).await;

    // Assert
    assert_eq!(
        error,
        json!({"type": "greater_than_equal", "loc": ["query", "offset"],
               "msg": "Input should be greater than or equal to 0", "input": "-1", "ctx": {"ge": 0}})
    );
}
test_both!(a_negative_offset_is_422_at_query_offset);

async fn a_non_integer_limit_or_offset_is_422_int_parsing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let limit = only_error(app.list_items(&token, "?limit=ten").await).await;
    let fraction = only_error(app.list_items(&token, "?limit=1.5").await).await;
    let offset = only_error(app.list_items(&token, "?offset=x").await).await;

    // Assert
    assert_eq!(
        limit,
        json!({"type": "int_parsing", "loc": ["query", "limit"],
               "msg": "Input should be a valid integer, unable to parse string as an integer",
               "input": "ten"})
    );
    assert_eq!(fraction["type"], "int_parsing");
    assert_eq!(fraction["loc"], json!(["query", "limit"]));
    assert_eq!(offset["type"], "int_parsing");
    assert_eq!(offset["loc"], json!(["query", "offset"]));
}
test_both!(a_non_integer_limit_or_offset_is_422_int_parsing);

// --- Read, replace, delete ------------------------------------------------------------------

async fn the_owner_can_read_replace_and_delete_their_item(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (alice_id, token) = app.user_with_token("alice", &[]).await;
    let item = app.new_item(&token, "Hat").await;
    let path = format!("/items/{}", item["id"]);

    // Act
    let read = app.get(&path, Some(&token)).await;
    let replaced = app
        .put_json(
            &path,
            Some(&token),
            &json!({"name": "Cap", "price": 4.0, "tax": 1.0}),
        )
        .await;
    let deleted = app.delete(&path, Some(&token)).await;

    // Assert
    assert_eq!(json_with_status(read, 200).await, item);
    let replaced = json_with_status(replaced, 200).await;
    assert_eq!(replaced["id"], item["id"]);
    assert_eq!(replaced["name"], "Cap");
    assert_eq!(replaced["price_with_tax"], json!(5.0));
    assert_eq!(replaced["owner_id"], json!(alice_id));
    assert_eq!(replaced["created_at"], item["created_at"]);
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(deleted.text().await.expect("body"), "");
}
test_both!(the_owner_can_read_replace_and_delete_their_item);

async fn put_is_a_full_replacement_and_omitting_tax_clears_it(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let item = created(
        &app,
        &token,
        json!({"name": "Hat", "description": "<p>warm</p>", "price": 10.0, "tax": 1.5}),
    )
    .await;
    let path = format!("/items/{}", item["id"]);

    // Act
    let response = app
        .put_json(&path, Some(&token), &json!({"name": "Hat", "price": 8.0}))
        .await;

    // Assert
    let replaced = json_with_status(response, 200).await;
    assert_eq!(replaced["tax"], Value::Null);
    assert_eq!(replaced["description"], Value::Null);
    assert_eq!(replaced["price"], json!(8.0));
    assert_eq!(replaced["price_with_tax"], json!(8.0));
    let read = json_with_status(app.get(&path, Some(&token)).await, 200).await;
    assert_eq!(read, replaced);
}
test_both!(put_is_a_full_replacement_and_omitting_tax_clears_it);

async fn put_validates_like_post_and_leaves_the_item_unchanged(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let item = app.new_item(&token, "Hat").await;
    let path = format!("/items/{}", item["id"]);

    // Act
    let negative = app
        .put_json(&path, Some(&token), &json!({"name": "Hat", "price": -1.0}))
        .await;
    let missing = app
        .put_json(&path, Some(&token), &json!({"name": "Hat"}))
        .await;
    let owner = app
        .put_json(
            &path,
            Some(&token),
            &json!({"name": "Hat", "price": 1.0, "owner_id": 99}),
        )
        .await;

    // Assert
    assert_eq!(only_error(negative).await["loc"], json!(["body", "price"]));
    assert_eq!(only_error(missing).await["type"], "missing");
    assert_eq!(only_error(owner).await["type"], "extra_forbidden");
    let read = json_with_status(app.get(&path, Some(&token)).await, 200).await;
    assert_eq!(read, item);
}
test_both!(put_validates_like_post_and_leaves_the_item_unchanged);

async fn a_deleted_item_answers_204_then_404(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let item = app.new_item(&token, "Hat").await;
    let path = format!("/items/{}", item["id"]);

    // Act
    let first = app.delete(&path, Some(&token)).await;
    let second = app.delete(&path, Some(&token)).await;
    let read = app.get(&path, Some(&token)).await;

    // Assert
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let not_found = json!({"detail": "Item not found"});
    assert_eq!(json_with_status(second, 404).await, not_found);
    assert_eq!(json_with_status(read, 404).await, not_found);
    assert_eq!(count_items(&app, &token).await, 0);
}
test_both!(a_deleted_item_answers_204_then_404);

/// Status, content type and body bytes: what a client could tell apart.
async fn fingerprint(response: Response) -> (u16, Option<String>, Vec<u8>) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.expect("body").to_vec();
    (status, content_type, body)
}

async fn another_users_item_is_indistinguishable_from_a_missing_one(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, alice) = app.user_with_token("alice", &[]).await;
    let (_, mallory) = app.user_with_token("mallory", &[]).await;
    let item = app.new_item(&alice, "Alice's hat").await;
    let theirs = format!("/items/{}", item["id"]);
    let missing = "/items/987654";
    let body = json!({"name": "pwned", "price": 1.0});

    for suffix in ["", "/view"] {
        // Act
        let foreign =
            fingerprint(app.get(&format!("{theirs}{suffix}"), Some(&mallory)).await).await;
        let absent =
            fingerprint(app.get(&format!("{missing}{suffix}"), Some(&mallory)).await).await;
        // Assert
        assert_eq!(foreign, absent, "GET {suffix}");
        assert_eq!(foreign.0, 404);
        assert_eq!(foreign.2, br#"{"detail":"Item not found"}"#);
    }
    // Act
    let foreign_put = fingerprint(app.put_json(&theirs, Some(&mallory), &body).await).await;
    let absent_put = fingerprint(app.put_json(missing, Some(&mallory), &body).await).await;
    let foreign_delete = fingerprint(app.delete(&theirs, Some(&mallory)).await).await;
    let absent_delete = fingerprint(app.delete(missing, Some(&mallory)).await).await;

    // Assert
    assert_eq!(foreign_put, absent_put);
    assert_eq!(foreign_put.0, 404);
    assert_eq!(foreign_delete, absent_delete);
    assert_eq!(foreign_delete.0, 404);
    // And nothing happened to Alice's item.
    let read = json_with_status(app.get(&theirs, Some(&alice)).await, 200).await;
    assert_eq!(read, item);
}
test_both!(another_users_item_is_indistinguishable_from_a_missing_one);

async fn an_admin_can_read_replace_and_delete_anyones_item(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (bob_id, bob) = app.user_with_token("bob", &[]).await;
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let item = app.new_item(&bob, "Bob's hat").await;
    let path = format!("/items/{}", item["id"]);

    // Act
    let read = app.get(&path, Some(&admin)).await;
    let view = app.get(&format!("{path}/view"), Some(&admin)).await;
    let replaced = app
        .put_json(
            &path,
            Some(&admin),
            &json!({"name": "Moderated", "price": 2.0}),
        )
        .await;
    let deleted = app.delete(&path, Some(&admin)).await;

    // Assert
    assert_eq!(json_with_status(read, 200).await, item);
    assert_eq!(view.status(), 200);
    let replaced = json_with_status(replaced, 200).await;
    assert_eq!(replaced["name"], "Moderated");
    // The item stays Bob's: an admin's edit does not take it over.
    assert_eq!(replaced["owner_id"], json!(bob_id));
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, Some(&bob)).await.status(), 404);
}
test_both!(an_admin_can_read_replace_and_delete_anyones_item);

async fn a_non_integer_item_id_is_422_at_path_item_id(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let expected = json!({
        "type": "int_parsing",
        "loc": ["path", "item_id"],
        "msg": "Input should be a valid integer, unable to parse string as an integer",
        "input": "abc",
    });
    let body = json!({"name": "Hat", "price": 1.0});

    // Act
    let responses = [
        ("GET", app.get("/items/abc", Some(&token)).await),
        ("GET view", app.get("/items/abc/view", Some(&token)).await),
        ("PUT", app.put_json("/items/abc", Some(&token), &body).await),
        ("DELETE", app.delete("/items/abc", Some(&token)).await),
    ];

    // Assert
    for (what, response) in responses {
        assert_eq!(only_error(response).await, expected, "{what}");
    }
    let overflow = only_error(app.get("/items/99999999999999999999", Some(&token)).await).await;
    assert_eq!(overflow["type"], "int_parsing");
    assert_eq!(overflow["loc"], json!(["path", "item_id"]));
    let injected = only_error(app.get("/items/1%20OR%201=1", Some(&token)).await).await;
    assert_eq!(injected["loc"], json!(["path", "item_id"]));
}
test_both!(a_non_integer_item_id_is_422_at_path_item_id);

// --- Validation -----------------------------------------------------------------------------

async fn unknown_fields_are_extra_forbidden_and_nothing_is_created(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let cases = [
        ("owner_id", json!(1)),
        ("id", json!(7)),
        ("roles", json!(["admin"])),
    ];

    for (field, value) in cases {
        let mut body = json!({"name": "Hat", "price": 1.0});
        body[field] = value.clone();

        // Act
        let error = only_error(app.create_item(&token, &body).await).await;

        // Assert
        assert_eq!(
            error,
            json!({"type": "extra_forbidden", "loc": ["body", field],
                   "msg": "Extra inputs are not permitted", "input": value})
        );
    }
    assert_eq!(count_items(&app, &token).await, 0);
}
test_both!(unknown_fields_are_extra_forbidden_and_nothing_is_created);

async fn a_missing_price_is_422_missing_at_body_price(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let price = only_error(app.create_item(&token, &json!({"name": "Hat"})).await).await;
    let name = only_error(app.create_item(&token, &json!({"price": 1.0})).await).await;

    // Assert
    assert_eq!(
        price,
        json!({"type": "missing", "loc": ["body", "price"], "msg": "Field required",
               "input": {"name": "Hat"}})
    );
    assert_eq!(name["type"], "missing");
    assert_eq!(name["loc"], json!(["body", "name"]));
    assert_eq!(count_items(&app, &token).await, 0);
}
test_both!(a_missing_price_is_422_missing_at_body_price);

async fn a_price_must_be_above_zero_and_at_most_one_billion(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let post = async |price: f64| {
        app.create_item(&token, &json!({"name": "Hat", "price": price}))
            .await
    };

    // Act
    let zero = only_error(post(0.0).await).await;
    let negative = only_error(post(-5.0).await).await;
    let too_high = only_error(post(1_000_000_001.0).await).await;
    let highest = post(1e9).await;
    let tiny = post(0.01).await;
    let integer = app
        .create_item(&token, &json!({"name": "Hat", "price": 10}))
        .await;

    // Assert
    assert_eq!(
        zero,
        json!({"type": "greater_than", "loc": ["body", "price"],
               "msg": "Input should be greater than 0", "input": 0.0, "ctx": {"gt": 0}})
    );
    assert_eq!(negative["type"], "greater_than");
    assert_eq!(negative["input"], json!(-5.0));
    assert_eq!(
        too_high,
        json!({"type": "less_than_equal", "loc": ["body", "price"],
               "msg": "Input should be less than or equal to 1000000000",
               "input": 1_000_000_001.0, "ctx": {"le": 1e9}})
    );
    assert_eq!(highest.status(), 201);
    assert_eq!(tiny.status(), 201);
    assert_eq!(json_with_status(integer, 201).await["price"], json!(10.0));
    assert_eq!(count_items(&app, &token).await, 3);
}
test_both!(a_price_must_be_above_zero_and_at_most_one_billion);

async fn a_tax_must_be_zero_or_more_and_at_most_one_billion(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let post = async |tax: f64| {
        app.create_item(&token, &json!({"name": "Hat", "price": 1.0, "tax": tax}))
            .await
    };

    // Act
    let negative = only_error(post(-1.0).await).await;
    let too_high = only_error(post(1e9 + 1.0).await).await;
    let zero = post(0.0).await;

    // Assert
    assert_eq!(
        negative,
        json!({"type": "greater_than_equal", "loc": ["body", "tax"],
               "msg": "Input should be greater than or equal to 0", "input": -1.0, "ctx": {"ge": 0}})
    );
    assert_eq!(too_high["type"], "less_than_equal");
    assert_eq!(too_high["loc"], json!(["body", "tax"]));
    assert_eq!(
        json_with_status(zero, 201).await["price_with_tax"],
        json!(1.0)
    );
    assert_eq!(count_items(&app, &token).await, 1);
}
test_both!(a_tax_must_be_zero_or_more_and_at_most_one_billion);

async fn every_broken_field_is_reported_at_once(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let response = app
        .create_item(&token, &json!({"name": "", "price": 0.0, "tax": -1.0}))
        .await;

    // Assert
    let body = json_with_status(response, 422).await;
    let locs: Vec<&Value> = body["detail"]
        .as_array()
        .expect("list")
        .iter()
        .map(|d| &d["loc"])
        .collect();
    assert_eq!(
        locs,
        [
            &json!(["body", "name"]),
            &json!(["body", "price"]),
            &json!(["body", "tax"])
        ]
    );
}
test_both!(every_broken_field_is_reported_at_once);

async fn a_name_must_be_1_to_200_characters(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let post = async |name: String| {
        app.create_item(&token, &json!({"name": name, "price": 1.0}))
            .await
    };
    let too_long = "n".repeat(201);

    // Act
    let empty = only_error(post(String::new()).await).await;
    let long = only_error(post(too_long.clone()).await).await;
    let longest = post("n".repeat(200)).await;
    // 200 characters of four bytes each: characters count, not bytes.
    let wide = post("🦀".repeat(200)).await;
    let single = post("x".to_owned()).await;

    // Assert
    assert_eq!(
        empty,
        json!({"type": "string_too_short", "loc": ["body", "name"],
               "msg": "String should have at least 1 character", "input": "", "ctx": {"min_length": 1}})
    );
    assert_eq!(
        long,
        json!({"type": "string_too_long", "loc": ["body", "name"],
               "msg": "String should have at most 200 characters", "input": too_long,
               "ctx": {"max_length": 200}})
    );
    assert_eq!(
        json_with_status(longest, 201).await["name"],
        "n".repeat(200)
    );
    assert_eq!(json_with_status(wide, 201).await["name"], "🦀".repeat(200));
    assert_eq!(single.status(), 201);
    assert_eq!(count_items(&app, &token).await, 3);
}
test_both!(a_name_must_be_1_to_200_characters);

async fn a_description_over_10000_characters_is_422(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let post = async |d: String| {
        app.create_item(
            &token,
            &json!({"name": "Hat", "price": 1.0, "description": d}),
        )
        .await
    };

    // Act
    let too_long = only_error(post("d".repeat(10_001)).await).await;
    let longest = post("d".repeat(10_000)).await;

    // Assert
    assert_eq!(too_long["type"], "string_too_long");
    assert_eq!(too_long["loc"], json!(["body", "description"]));
    assert_eq!(
        too_long["msg"],
        "String should have at most 10000 characters"
    );
    assert_eq!(too_long["ctx"], json!({"max_length": 10_000}));
    assert_eq!(
        json_with_status(longest, 201).await["description"],
        "d".repeat(10_000)
    );
    assert_eq!(count_items(&app, &token).await, 1);
}
test_both!(a_description_over_10000_characters_is_422);

async fn a_field_of_the_wrong_type_is_422_at_its_location(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let price = only_error(
        app.create_item(&token, &json!({"name": "Hat", "price": "abc"}))
            .await,
    )
    .await;
    let name = only_error(
        app.create_item(&token, &json!({"name": 5, "price": 1.0}))
            .await,
    )
    .await;
    let not_an_object = only_error(app.create_item(&token, &json!(["Hat", 1.0])).await).await;
    let null_price = only_error(
        app.create_item(&token, &json!({"name": "Hat", "price": null}))
            .await,
    )
    .await;

    // Assert
    assert_eq!(price["loc"], json!(["body", "price"]));
    assert!(
        price["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("float_")),
        "{price}"
    );
    assert_eq!(price["input"], "abc");
    assert_eq!(name["loc"], json!(["body", "name"]));
    assert_eq!(name["type"], "string_type");
    assert_eq!(not_an_object["loc"][0], "body");
    assert_eq!(null_price["loc"], json!(["body", "price"]));
    assert_eq!(count_items(&app, &token).await, 0);
}
test_both!(a_field_of_the_wrong_type_is_422_at_its_location);

async fn malformed_json_is_422_json_invalid_in_the_body(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let post = |body: &'static str| {
        app.send_raw(
            reqwest::Method::POST,
            "/items/",
            &token,
            Some("application/json"),
            body,
        )
    };

    // Act
    let broken = only_error(post(r#"{"name": }"#).await).await;
    let truncated = only_error(post(r#"{"name": "Hat", "price": 1"#).await).await;
    let empty = only_error(post("").await).await;

    // Assert
    assert_eq!(
        broken,
        json!({"type": "json_invalid", "loc": ["body", 9], "msg": "JSON decode error",
               "input": {}, "ctx": {"error": "expected value"}})
    );
    for error in [&truncated, &empty] {
        assert_eq!(error["type"], "json_invalid", "{error}");
        assert_eq!(error["loc"][0], "body", "{error}");
        assert!(error["loc"][1].is_u64(), "{error}");
    }
    assert_eq!(count_items(&app, &token).await, 0);
}
test_both!(malformed_json_is_422_json_invalid_in_the_body);

async fn a_body_that_is_not_json_is_415(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let item = app.new_item(&token, "Hat").await;
    let body = r#"{"name": "Hat", "price": 1.0}"#;
    let expected = json!({"detail": "Unsupported Media Type"});

    // Act
    let text = app
        .send_raw(
            reqwest::Method::POST,
            "/items/",
            &token,
            Some("text/plain"),
            body,
        )
        .await;
    let none = app
        .send_raw(reqwest::Method::POST, "/items/", &token, None, body)
        .await;
    let form = app
        .send_raw(
            reqwest::Method::POST,
            "/items/",
            &token,
            Some("application/x-www-form-urlencoded"),
            "name=Hat&price=1",
        )
        .await;
    let put = app
        .send_raw(
            reqwest::Method::PUT,
            &format!("/items/{}", item["id"]),
            &token,
            Some("text/plain"),
            body,
        )
        .await;

    // Assert
    for (what, response) in [("text", text), ("none", none), ("form", form), ("put", put)] {
        assert_eq!(json_with_status(response, 415).await, expected, "{what}");
    }
    assert_eq!(count_items(&app, &token).await, 1);
}
test_both!(a_body_that_is_not_json_is_415);

// --- HTML: sanitizing on input, escaping on output --------------------------------------------

async fn descriptions_are_sanitized_and_the_sanitized_form_is_stored(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let cases = [
        ("<p>Hi</p><script>alert(1)</script>", "<p>Hi</p>"),
        (r#"<img src="x" onerror="alert(1)">pic"#, "pic"),
        (r#"<b onmouseover="alert(1)">bold</b>"#, "<b>bold</b>"),
        (
            r#"<iframe src="https://evil.example"></iframe>after"#,
            "after",
        ),
        (
            r#"<p style="color:red" class="x" id="y">styled</p>"#,
            "<p>styled</p>",
        ),
        (
            r#"<a href="javascript:alert(1)">click</a>"#,
            r#"<a rel="noopener noreferrer">click</a>"#,
        ),
        (
            r#"<a href="https://example.com" target="_blank" rel="opener">ok</a>"#,
            r#"<a href="https://example.com" rel="noopener noreferrer">ok</a>"#,
        ),
        (
            r#"<a href="mailto:a@example.com">mail</a>"#,
            r#"<a href="mailto:a@example.com" rel="noopener noreferrer">mail</a>"#,
        ),
        (
            r#"<a href="data:text/html,<script>alert(1)</script>">d</a>"#,
            r#"<a rel="noopener noreferrer">d</a>"#,
        ),
        ("<svg><script>alert(1)</script></svg>x", "x"),
        ("<style>body{}</style>text", "text"),
    ];

    for (input, expected) in cases {
        // Act
        let item = created(
            &app,
            &token,
            json!({"name": "Hat", "price": 1.0, "description": input}),
        )
        .await;

        // Assert: answered, stored and read back sanitized.
        assert_eq!(item["description"], expected, "{input}");
        let read = json_with_status(app.get_item(&token, &item["id"]).await, 200).await;
        assert_eq!(read["description"], expected, "{input}");
    }
    let list = json_with_status(app.list_items(&token, "?limit=100").await, 200).await;
    let all = list.to_string().to_lowercase();
    for forbidden in [
        "<script",
        "onerror",
        "javascript:",
        "<img",
        "<iframe",
        "style=",
        "<svg",
    ] {
        assert!(!all.contains(forbidden), "{forbidden} survived: {all}");
    }
}
test_both!(descriptions_are_sanitized_and_the_sanitized_form_is_stored);

async fn allowed_tags_survive_sanitizing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let html = "<p>a<br>b <b>b</b> <i>i</i> <em>e</em> <strong>s</strong> <code>c</code></p>\
                <pre>p</pre><blockquote>q</blockquote><ul><li>u</li></ul><ol><li>o</li></ol>\
                <a href=\"http://example.com/x?y=1&amp;z=2\" rel=\"noopener noreferrer\">l</a>";

    // Act
    let item = created(
        &app,
        &token,
        json!({"name": "Hat", "price": 1.0, "description": html}),
    )
    .await;

    // Assert
    assert_eq!(item["description"], html);
}
test_both!(allowed_tags_survive_sanitizing);

async fn the_html_view_escapes_the_name_and_sends_an_html_csp(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let item = created(
        &app,
        &token,
        json!({
            "name": "<script>alert(1)</script>\"'&",
            "description": "<p>nice</p><script>alert(2)</script>",
            "price": 1.0,
        }),
    )
    .await;
    // The name is plain text: stored as given.
    assert_eq!(item["name"], "<script>alert(1)</script>\"'&");

    // Act
    let response = app
        .get(&format!("/items/{}/view", item["id"]), Some(&token))
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let content_type = headers[header::CONTENT_TYPE].to_str().expect("ascii");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let csp = headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("style-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(
        headers
            .get_all(header::CONTENT_SECURITY_POLICY)
            .iter()
            .count(),
        1
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let page = response.text().await.expect("html");
    // Escaped, in either entity form the template engine may use.
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            || page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    assert!(!page.to_lowercase().contains("<script"), "{page}");
    assert!(!page.contains("alert(2)"), "{page}");
    assert!(page.contains("<p>nice</p>"), "{page}");
}
test_both!(the_html_view_escapes_the_name_and_sends_an_html_csp);

async fn the_html_view_of_another_users_item_is_404(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, alice) = app.user_with_token("alice", &[]).await;
    let (_, bob) = app.user_with_token("bob", &[]).await;
    let item = app.new_item(&alice, "secret plans").await;

    // Act
    let response = app
        .get(&format!("/items/{}/view", item["id"]), Some(&bob))
        .await;

    // Assert
    assert_eq!(
        json_with_status(response, 404).await,
        json!({"detail": "Item not found"})
    );
}
test_both!(the_html_view_of_another_users_item_is_404);

// --- Authentication -----------------------------------------------------------------------------

/// Every items route, with a JSON body where it takes one.
fn every_route(id: i64) -> Vec<(reqwest::Method, String, Option<Value>)> {
    use reqwest::Method;
    let body = json!({"name": "Hat", "price": 1.0});
    vec![
        (Method::POST, "/items/".to_owned(), Some(body.clone())),
        (Method::GET, "/items/".to_owned(), None),
        (Method::GET, format!("/items/{id}"), None),
        (Method::PUT, format!("/items/{id}"), Some(body)),
        (Method::DELETE, format!("/items/{id}"), None),
        (Method::GET, format!("/items/{id}/view"), None),
    ]
}

async fn every_items_route_without_a_token_is_401_not_authenticated(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let item = app.new_item(&token, "Hat").await;

    for (method, path, body) in every_route(item["id"].as_i64().expect("id")) {
        let mut request = app.client.request(method.clone(), app.url(&path));
        if let Some(body) = body {
            request = request.json(&body);
        }

        // Act
        let response = request.send().await.expect("request");

        // Assert
        assert_eq!(response.status(), 401, "{method} {path}");
        assert_unauthorized(response, "Not authenticated").await;
    }
    let unchanged = json_with_status(app.get_item(&token, &item["id"]).await, 200).await;
    assert_eq!(unchanged, item);
    assert_eq!(count_items(&app, &token).await, 1);
}
test_both!(every_items_route_without_a_token_is_401_not_authenticated);

async fn every_items_route_with_a_garbage_token_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let item = app.new_item(&token, "Hat").await;
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let garbage = ["garbage", "a.b.c", tampered.as_str()];

    for (method, path, body) in every_route(item["id"].as_i64().expect("id")) {
        for bad in garbage {
            let mut request = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(bad);
            if let Some(body) = &body {
                request = request.json(body);
            }

            // Act
            let response = request.send().await.expect("request");

            // Assert
            assert_eq!(response.status(), 401, "{method} {path} {bad}");
            assert_unauthorized(response, INVALID_TOKEN).await;
        }
    }
    let unchanged = json_with_status(app.get_item(&token, &item["id"]).await, 200).await;
    assert_eq!(unchanged, item);
}
test_both!(every_items_route_with_a_garbage_token_is_401);

async fn a_basic_authorization_header_is_not_authenticated(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app
        .client
        .get(app.url("/items/"))
        .basic_auth("alice", Some("password"))
        .send()
        .await
        .expect("request");

    // Assert
    assert_unauthorized(response, "Not authenticated").await;
}
test_both!(a_basic_authorization_header_is_not_authenticated);

// --- Injection --------------------------------------------------------------------------------

async fn sql_looking_names_are_stored_literally(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, alice) = app.user_with_token("alice", &[]).await;
    let (_, bob) = app.user_with_token("bob", &[]).await;
    app.new_item(&bob, "bob's item").await;
    let name = "x'); DROP TABLE items;--";
    let description = "1' OR '1'='1";

    // Act
    let item = created(
        &app,
        &alice,
        json!({"name": name, "description": description, "price": 1.0}),
    )
    .await;

    // Assert
    assert_eq!(item["name"], name);
    assert_eq!(item["description"], description);
    let read = json_with_status(app.get_item(&alice, &item["id"]).await, 200).await;
    assert_eq!(read["name"], name);
    let found = json_with_status(app.list_items(&alice, "?q=DROP%20TABLE").await, 200).await;
    assert_eq!(names(&found), [name]);
    // The table is still there, with everyone's rows.
    assert_eq!(count_items(&app, &bob).await, 1);
    assert_eq!(count_items(&app, &alice).await, 1);
}
test_both!(sql_looking_names_are_stored_literally);

/// Regression: on SQLite, `q` containing NUL matched every item; on PostgreSQL text with
/// NUL answers 500. NUL is refused with 422 wherever text enters.
async fn text_with_nul_is_a_422_in_a_query_and_in_json(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    app.new_item(&token, "Pen").await;

    // Act
    let query = app.list_items(&token, "?q=%00").await;
    let created = app
        .create_item(&token, &json!({"name": "Pe\u{0}n", "price": 1.0}))
        .await;
    let nested = app
        .create_item(
            &token,
            &json!({"name": "Pen", "description": "<p>a\u{0}</p>", "price": 1.0}),
        )
        .await;

    // Assert
    for (response, loc) in [
        (query, json!(["query", "q"])),
        (created, json!(["body", "name"])),
        (nested, json!(["body", "description"])),
    ] {
        assert_eq!(response.status(), 422, "{loc}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["detail"][0]["type"], "string_contains_nul", "{body}");
        assert_eq!(body["detail"][0]["loc"], loc, "{body}");
    }
    let listed: Value = app.list_items(&token, "").await.json().await.unwrap();
    assert_eq!(listed["total"], 1, "nothing was created");
}
test_both!(text_with_nul_is_a_422_in_a_query_and_in_json);
