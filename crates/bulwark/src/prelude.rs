//! The items most applications use, in one import: `use bulwark::prelude::*;`.

pub use crate::{
    csrf::Csrf,
    error::{HttpError, ValidationErrors},
    jwt::{Claims, CurrentUser, JwtAuth, JwtConfig},
    password::{PasswordHasher, Verification},
    pipeline::Pipeline,
    rate_limit::{Quota, RateLimitPolicy},
    rbac::{Admin, RequireRole},
    secret::MasterSecret,
    validation::{Form, Json, JsonOrForm, Path, Query, Rules, Validate, Validated},
};

#[cfg(feature = "sanitize")]
pub use crate::sanitize::SafeHtml;
