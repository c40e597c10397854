//! The items API: CRUD scoped to the owner (or an admin), and an HTML view.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use bulwark::{
    error::{HttpError, ValidationErrors},
    validation::{Json, Path, Query},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::CurrentUser,
    db::ItemFields,
    domain::{ItemBody, ItemOut, ListItemsQuery},
    errors::internal,
    events::publish_item_event,
    state::AppState,
};

/// The items routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_item, list_items))
        .routes(routes!(get_item, update_item, delete_item))
        .routes(routes!(view_item))
}

/// A page of the caller's items.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemList {
    /// This page.
    pub items: Vec<ItemOut>,
    /// How many match in all.
    pub total: i64,
}

fn parse_fields(body: ItemBody) -> Result<ItemFields, Response> {
    ItemFields::try_from(body).map_err(|e: ValidationErrors| e.into_response())
}

/// Create an item owned by the caller.
#[utoipa::path(post, path = "/items/", tag = "items", request_body = ItemBody,
    responses((status = 201, body = ItemOut), (status = 401), (status = 415), (status = 422)))]
async fn create_item(
    State(state): State<AppState>,
    user: CurrentUser,
    Json(body): Json<ItemBody>,
) -> Result<(StatusCode, axum::Json<ItemOut>), Response> {
    let fields = parse_fields(body)?;
    let item = state
        .repo
        .create_item(user.id, &fields)
        .await
        .map_err(internal)?;
    publish_item_event(state.events.as_ref(), "item.created", item.clone().into()).await;
    Ok((StatusCode::CREATED, axum::Json(item.into())))
}

/// List the caller's own items.
#[utoipa::path(get, path = "/items/", tag = "items", params(ListItemsQuery),
    responses((status = 200, body = ItemList), (status = 401), (status = 422)))]
async fn list_items(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<ListItemsQuery>,
) -> Result<axum::Json<ItemList>, Response> {
    let (q, limit, offset) = query.resolve().map_err(IntoResponse::into_response)?;
    let (items, total) = state
        .repo
        .list_items(user.id, q.as_deref(), limit, offset)
        .await
        .map_err(internal)?;
    Ok(axum::Json(ItemList {
        items: items.into_iter().map(Into::into).collect(),
        total,
    }))
}

/// Read an item (owner or admin; anyone else gets 404, as for a missing item).
#[utoipa::path(get, path = "/items/{item_id}", tag = "items",
    params(("item_id" = i64, Path, description = "Item id")),
    responses((status = 200, body = ItemOut), (status = 401), (status = 404), (status = 422)))]
async fn get_item(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(item_id): Path<i64>,
) -> Result<axum::Json<ItemOut>, Response> {
    let item = state
        .repo
        .get_item(item_id, user.id, user.is_admin())
        .await
        .map_err(internal)?
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "Item not found").into_response())?;
    Ok(axum::Json(item.into()))
}

/// Replace an item (owner or admin).
#[utoipa::path(put, path = "/items/{item_id}", tag = "items", request_body = ItemBody,
    params(("item_id" = i64, Path, description = "Item id")),
    responses((status = 200, body = ItemOut), (status = 401), (status = 404), (status = 415), (status = 422)))]
async fn update_item(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(item_id): Path<i64>,
    Json(body): Json<ItemBody>,
) -> Result<axum::Json<ItemOut>, Response> {
    let fields = parse_fields(body)?;
    let item = state
        .repo
        .update_item(item_id, user.id, user.is_admin(), &fields)
        .await
        .map_err(internal)?
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "Item not found").into_response())?;
    publish_item_event(state.events.as_ref(), "item.updated", item.clone().into()).await;
    Ok(axum::Json(item.into()))
}

/// Delete an item (owner or admin).
#[utoipa::path(delete, path = "/items/{item_id}", tag = "items",
    params(("item_id" = i64, Path, description = "Item id")),
    responses((status = 204), (status = 401), (status = 404), (status = 422)))]
async fn delete_item(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(item_id): Path<i64>,
) -> Result<StatusCode, Response> {
    let item = state
        .repo
        .delete_item(item_id, user.id, user.is_admin())
        .await
        .map_err(internal)?
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "Item not found").into_response())?;
    publish_item_event(state.events.as_ref(), "item.deleted", item.into()).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The item as an HTML page: the name escaped, the description in its sanitized form.
#[utoipa::path(get, path = "/items/{item_id}/view", tag = "items",
    params(("item_id" = i64, Path, description = "Item id")),
    responses((status = 200, content_type = "text/html", body = String), (status = 401), (status = 404), (status = 422)))]
async fn view_item(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(item_id): Path<i64>,
) -> Result<Response, Response> {
    let item = state
        .repo
        .get_item(item_id, user.id, user.is_admin())
        .await
        .map_err(internal)?
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "Item not found").into_response())?;
    let out = ItemOut::from(item);
    // Stored descriptions are sanitized on input; sanitizing again on output costs little and
    // protects against rows written by other means. The template escapes everything else.
    let description = out
        .description
        .as_deref()
        .map(|d| bulwark::sanitize::SafeHtml::sanitize(d).into_string())
        .unwrap_or_default();
    Ok(crate::pages::html_page(&ItemPage {
        name: &out.name,
        description: &description,
        price: out.price,
        tax: out.tax.unwrap_or(0.0),
        price_with_tax: out.price_with_tax,
    }))
}

/// The item page. `description` is sanitized HTML (rendered as is); every other value is
/// escaped by the template engine.
#[derive(askama::Template)]
#[template(path = "item.html")]
struct ItemPage<'a> {
    name: &'a str,
    description: &'a str,
    price: f64,
    tax: f64,
    price_with_tax: f64,
}
