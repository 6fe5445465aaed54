//! `turf:host/shadow`: local shadows, checked against `aws.greengrass.ShadowManager`.
//!
//! Resources are `$aws/things/<thing>/shadow[/name/<name>]` (the thing name for listing), as in
//! Greengrass. Errors map to Greengrass IPC errors: 404 → resource-not-found ("No shadow found"),
//! 409 → conflict, other 4xx → invalid-arguments with AWS's message, 5xx → service-error.

use crate::components::access::{
    DELETE_THING_SHADOW, GET_THING_SHADOW, LIST_NAMED_SHADOWS, SHADOW_SERVICE, UPDATE_THING_SHADOW,
};
use crate::components::bindings::turf::host::shadow::{self, NamedShadows};
use crate::components::bindings::turf::host::types::Error;
use crate::components::instance::HostState;
use crate::shadow::document::ShadowError;
use crate::shadow::topics::ShadowId;
use crate::shadow::{ShadowOperation, ShadowReply, ShadowRequest};

fn ipc_error(error: ShadowError) -> Error {
    match error.code {
        404 => Error::ResourceNotFound("No shadow found".to_owned()),
        409 => Error::Conflict(error.message),
        401 => Error::Unauthorized(error.message),
        code if code < 500 => Error::InvalidArguments(error.message),
        _ => Error::ServiceError(error.message),
    }
}

impl HostState {
    /// Checks access, then returns the call to make (owning everything it needs, so the guest's
    /// store is not borrowed while it waits).
    fn shadow_call(
        &self,
        operation: &str,
        request: ShadowRequest,
        resource: &str,
    ) -> Result<impl Future<Output = Result<ShadowReply, Error>> + Send + use<>, Error> {
        self.authorize(SHADOW_SERVICE, operation, resource)?;
        let shadows = self.services.shadows.requests.clone();
        Ok(async move {
            shadows
                .send(request)
                .await
                .map_err(|e| Error::ServiceError(format!("shadow manager unavailable: {e}")))?
                .map_err(ipc_error)
        })
    }

    fn document_call(
        &self,
        thing: String,
        name: String,
        operation: &str,
        op: ShadowOperation,
    ) -> Result<impl Future<Output = Result<Vec<u8>, Error>> + Send + use<>, Error> {
        let resource = ShadowId::new(&thing, &name).map_err(ipc_error)?.resource();
        let call =
            self.shadow_call(operation, ShadowRequest { thing, name, operation: op, rate_limited: true }, &resource)?;
        Ok(async move {
            match call.await? {
                ShadowReply::Document { document } => Ok(document.to_string().into_bytes()),
                ShadowReply::Named(_) => {
                    Err(Error::ServiceError("unexpected reply from the shadow manager".to_owned()))
                }
            }
        })
    }
}

impl shadow::Host for HostState {
    async fn get_thing_shadow(&mut self, thing: String, name: String) -> Result<Vec<u8>, Error> {
        self.document_call(thing, name, GET_THING_SHADOW, ShadowOperation::Get)?.await
    }

    async fn update_thing_shadow(&mut self, thing: String, name: String, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        let payload =
            String::from_utf8(payload).map_err(|_| Error::InvalidArguments("Invalid JSON: not UTF-8".to_owned()))?;
        self.document_call(thing, name, UPDATE_THING_SHADOW, ShadowOperation::Update { payload })?.await
    }

    async fn delete_thing_shadow(&mut self, thing: String, name: String) -> Result<Vec<u8>, Error> {
        self.document_call(thing, name, DELETE_THING_SHADOW, ShadowOperation::Delete { expected_version: None })?.await
    }

    async fn list_named_shadows_for_thing(
        &mut self,
        thing: String,
        next_token: Option<String>,
        page_size: Option<u32>,
    ) -> Result<NamedShadows, Error> {
        let resource = thing.clone();
        let request = ShadowRequest {
            thing,
            name: String::new(),
            operation: ShadowOperation::ListNamed { next_token, page_size },
            rate_limited: true,
        };
        match self.shadow_call(LIST_NAMED_SHADOWS, request, &resource)?.await? {
            ShadowReply::Named(page) => Ok(NamedShadows {
                results: page.results,
                timestamp: u64::try_from(page.timestamp).unwrap_or(0),
                next_token: page.next_token,
            }),
            ShadowReply::Document { .. } => {
                Err(Error::ServiceError("unexpected reply from the shadow manager".to_owned()))
            }
        }
    }
}
