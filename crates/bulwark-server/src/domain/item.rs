use bulwark::{
    error::{ErrorDetail, ValidationErrors},
    sanitize::SafeHtml,
    validation::body_error,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::db::{Item, ItemFields};

/// Largest price or tax.
const MAX_AMOUNT: f64 = 1e9;
/// Longest name, in characters.
const MAX_NAME: usize = 200;
/// Longest description, in characters, before sanitizing.
const MAX_DESCRIPTION: usize = 10_000;

/// The body of `POST /items/` and `PUT /items/{item_id}`. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    /// Plain text, 1-200 characters, no control characters; always escaped when rendered as
    /// HTML.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: String,
    /// HTML, at most 10 000 characters, sanitized with an allowlist
    /// (`p br b i em strong code pre blockquote ul ol li a`; `a href` http, https, mailto only).
    /// No NUL character.
    #[schema(max_length = 10000, pattern = "^[^\\u0000]*$")]
    pub description: Option<String>,
    /// Finite, > 0 and <= 1e9.
    #[schema(exclusive_minimum = 0.0, maximum = 1e9)]
    pub price: f64,
    /// Finite, at least 0 and at most 1e9.
    #[schema(minimum = 0.0, maximum = 1e9)]
    pub tax: Option<f64>,
}

impl TryFrom<ItemBody> for ItemFields {
    type Error = ValidationErrors;

    fn try_from(body: ItemBody) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let name_len = body.name.chars().count();
        if name_len == 0 {
            errors.push(
                body_error(
                    "name",
                    "string_too_short",
                    "String should have at least 1 character",
                    json!(body.name),
                )
                .with_ctx(json!({"min_length": 1})),
            );
        } else if name_len > MAX_NAME {
            errors.push(
                body_error(
                    "name",
                    "string_too_long",
                    "String should have at most 200 characters",
                    json!(body.name),
                )
                .with_ctx(json!({"max_length": MAX_NAME})),
            );
        } else if body.name.chars().any(char::is_control) {
            errors.push(body_error(
                "name",
                "string_pattern_mismatch",
                "String should not contain control characters",
                json!(body.name),
            ));
        }
        if let Some(description) = &body.description {
            if description.chars().count() > MAX_DESCRIPTION {
                errors.push(
                    ErrorDetail::new(
                        "string_too_long",
                        ["body", "description"],
                        "String should have at most 10000 characters",
                    )
                    .with_ctx(json!({"max_length": MAX_DESCRIPTION})),
                );
            } else if description.contains('\0') {
                errors.push(body_error(
                    "description",
                    "string_pattern_mismatch",
                    "String should not contain NUL characters",
                    json!(description),
                ));
            }
        }
        check_amount(&mut errors, "price", body.price, false);
        if let Some(tax) = body.tax {
            check_amount(&mut errors, "tax", tax, true);
        }
        errors.into_result(())?;
        Ok(ItemFields {
            name: body.name,
            description: body
                .description
                .map(|d| SafeHtml::sanitize(&d).into_string()),
            price: body.price,
            tax: body.tax,
        })
    }
}

fn check_amount(errors: &mut ValidationErrors, field: &str, value: f64, zero_ok: bool) {
    if !value.is_finite() {
        errors.push(body_error(
            field,
            "finite_number",
            "Input should be a finite number",
            json!(null),
        ));
    } else if zero_ok && value < 0.0 {
        errors.push(
            body_error(
                field,
                "greater_than_equal",
                "Input should be greater than or equal to 0",
                json!(value),
            )
            .with_ctx(json!({"ge": 0})),
        );
    } else if !zero_ok && value <= 0.0 {
        errors.push(
            body_error(
                field,
                "greater_than",
                "Input should be greater than 0",
                json!(value),
            )
            .with_ctx(json!({"gt": 0})),
        );
    } else if value > MAX_AMOUNT {
        errors.push(
            body_error(
                field,
                "less_than_equal",
                "Input should be less than or equal to 1000000000",
                json!(value),
            )
            .with_ctx(json!({"le": MAX_AMOUNT})),
        );
    }
}

/// An item as answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemOut {
    /// Id.
    pub id: i64,
    /// Plain text.
    pub name: String,
    /// Sanitized HTML.
    pub description: Option<String>,
    /// Price.
    pub price: f64,
    /// Tax.
    pub tax: Option<f64>,
    /// `price + (tax or 0)`.
    pub price_with_tax: f64,
    /// Owner's user id.
    pub owner_id: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<Item> for ItemOut {
    fn from(item: Item) -> Self {
        let f = item.fields;
        Self {
            id: item.id,
            price_with_tax: f.price + f.tax.unwrap_or(0.0),
            name: f.name,
            description: f.description,
            price: f.price,
            tax: f.tax,
            owner_id: item.owner_id,
            created_at: super::rfc3339(item.created_at),
            updated_at: super::rfc3339(item.updated_at),
        }
    }
}

/// Query of `GET /items/`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListItemsQuery {
    /// Substring of the name (matched literally, case-insensitively).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// At least 0 (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

impl ListItemsQuery {
    /// `(q, limit, offset)` with defaults applied.
    ///
    /// # Errors
    /// 422 details with `loc: ["query", ...]`.
    pub fn resolve(self) -> Result<(Option<String>, i64, i64), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let limit = self.limit.unwrap_or(20);
        let offset = self.offset.unwrap_or(0);
        if limit < 1 {
            errors.push(
                ErrorDetail::new(
                    "greater_than_equal",
                    ["query", "limit"],
                    "Input should be greater than or equal to 1",
                )
                .with_input(json!(limit.to_string()))
                .with_ctx(json!({"ge": 1})),
            );
        } else if limit > 100 {
            errors.push(
                ErrorDetail::new(
                    "less_than_equal",
                    ["query", "limit"],
                    "Input should be less than or equal to 100",
                )
                .with_input(json!(limit.to_string()))
                .with_ctx(json!({"le": 100})),
            );
        }
        if offset < 0 {
            errors.push(
                ErrorDetail::new(
                    "greater_than_equal",
                    ["query", "offset"],
                    "Input should be greater than or equal to 0",
                )
                .with_input(json!(offset.to_string()))
                .with_ctx(json!({"ge": 0})),
            );
        }
        if let Some(q) = &self.q
            && q.chars().count() > MAX_NAME
        {
            {
                errors.push(
                    ErrorDetail::new(
                        "string_too_long",
                        ["query", "q"],
                        "String should have at most 200 characters",
                    )
                    .with_ctx(json!({"max_length": MAX_NAME})),
                );
            }
        }
        errors.into_result((self.q.filter(|q| !q.is_empty()), limit, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(name: &str, price: f64, tax: Option<f64>, description: Option<&str>) -> ItemBody {
        ItemBody {
            name: name.into(),
            description: description.map(Into::into),
            price,
            tax,
        }
    }

    #[test]
    fn valid_items_parse_and_descriptions_are_sanitized() {
        let fields = ItemFields::try_from(body(
            "Pen",
            1.5,
            Some(0.5),
            Some("<b>x</b><script>alert(1)</script>"),
        ))
        .unwrap();
        assert_eq!(fields.description.as_deref(), Some("<b>x</b>"));
    }

    #[test]
    fn every_field_rule_is_enforced_and_all_errors_reported() {
        let errors = ItemFields::try_from(body("", 0.0, Some(-1.0), None)).unwrap_err();
        let kinds: Vec<_> = errors.details().iter().map(|d| d.kind.as_ref()).collect();
        assert_eq!(
            kinds,
            ["string_too_short", "greater_than", "greater_than_equal"]
        );
        assert!(ItemFields::try_from(body(&"n".repeat(201), 1.0, None, None)).is_err());
        assert!(ItemFields::try_from(body("ok", 1e9 + 1.0, None, None)).is_err());
        assert!(ItemFields::try_from(body("ok", 1e9, Some(1e9), None)).is_ok());
        assert!(ItemFields::try_from(body("ok", f64::NAN, None, None)).is_err());
        assert!(ItemFields::try_from(body("nul\0", 1.0, None, None)).is_err());
        assert!(ItemFields::try_from(body("ok", 1.0, None, Some(&"d".repeat(10_001)))).is_err());
    }
}
