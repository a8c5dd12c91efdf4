//! Error responses in the three documented shapes (see [`ErrorShape`]), plus the documented
//! 401 "Access denied" body with `accessRequests`.
//!
//! An [`ApiError`] answers in the nested shape and leaves an [`ErrorDetails`] in the response's
//! extensions, so the `/api` middleware can re-render it in the shape chosen at run time.

use axum::Json;
use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::ErrorShape;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
    access_requests: Option<Vec<Value>>,
}

/// What an error said, kept with the response for re-rendering.
#[derive(Debug, Clone)]
pub struct ErrorDetails {
    pub status: StatusCode,
    pub message: String,
    pub access_requests: Option<Vec<Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            access_requests: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// The documented permission denial: 401 with the actions the key lacks.
    pub fn access_denied(action: &str, resource: &str) -> ApiError {
        ApiError {
            access_requests: Some(vec![json!({"action": action, "resource": resource})]),
            ..ApiError::unauthorized("Access denied")
        }
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn throttled(retry_after: Option<u64>) -> ApiError {
        ApiError {
            retry_after,
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests, slow down",
            )
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

fn name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequestError",
        401 => "UnauthorizedError",
        403 => "ForbiddenError",
        404 => "NotFoundError",
        405 => "MethodNotAllowedError",
        409 => "ConflictError",
        429 => "TooManyRequestsError",
        502 => "BadGatewayError",
        503 => "ServiceUnavailableError",
        500..=599 => "InternalServerError",
        _ => "Error",
    }
}

/// The body of an error in `shape`; an access denial always has its documented body.
pub fn render(shape: ErrorShape, details: &ErrorDetails) -> Value {
    let code = details.status.as_u16();
    if let Some(requests) = &details.access_requests {
        return json!({"error": {
            "accessRequests": requests,
            "message": details.message,
            "status": code,
            "statusCode": code,
        }});
    }
    match shape {
        ErrorShape::Nested => json!({"error": {
            "statusCode": code,
            "name": name(details.status),
            "message": details.message,
        }}),
        ErrorShape::Flat => json!({
            "statusCode": code,
            "name": name(details.status),
            "message": details.message,
        }),
        ErrorShape::Message => json!({
            "message": details.message,
            "status": code,
            "statusCode": code,
        }),
    }
}

/// Rewrites the body of an error response in `shape`; other responses pass unchanged.
pub fn reshape(response: Response, shape: ErrorShape) -> Response {
    let Some(details) = response.extensions().get::<ErrorDetails>().cloned() else {
        return response;
    };
    if shape == ErrorShape::Nested {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let body = render(shape, &details).to_string();
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(body))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let details = ErrorDetails {
            status: self.status,
            message: self.message,
            access_requests: self.access_requests,
        };
        let body = render(ErrorShape::Nested, &details);
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(details);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(status: StatusCode) -> ErrorDetails {
        ErrorDetails {
            status,
            message: "boom".into(),
            access_requests: None,
        }
    }

    #[test]
    fn three_shapes() {
        let d = details(StatusCode::NOT_FOUND);
        assert_eq!(
            render(ErrorShape::Nested, &d),
            json!({"error": {"statusCode": 404, "name": "NotFoundError", "message": "boom"}})
        );
        assert_eq!(
            render(ErrorShape::Flat, &d),
            json!({"statusCode": 404, "name": "NotFoundError", "message": "boom"})
        );
        assert_eq!(
            render(ErrorShape::Message, &d),
            json!({"message": "boom", "status": 404, "statusCode": 404})
        );
    }

    #[test]
    fn access_denied_keeps_its_documented_body_in_every_shape() {
        let err = ApiError::access_denied("network:CreateConnection", "company/1");
        let d = ErrorDetails {
            status: err.status,
            message: err.message.clone(),
            access_requests: err.access_requests.clone(),
        };
        let expected = json!({"error": {
            "accessRequests": [{"action": "network:CreateConnection", "resource": "company/1"}],
            "message": "Access denied",
            "status": 401,
            "statusCode": 401,
        }});
        for shape in [ErrorShape::Nested, ErrorShape::Flat, ErrorShape::Message] {
            assert_eq!(render(shape, &d), expected);
        }
    }

    #[test]
    fn reshape_keeps_status_and_headers() {
        let response = reshape(
            ApiError::throttled(Some(3)).into_response(),
            ErrorShape::Flat,
        );
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "3");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}
