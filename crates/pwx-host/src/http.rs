//! HTTP stream callbacks with Envoy's semantics: maps available only in their phase (or while
//! paused after it), Pause on headers stopping the whole stream, Pause on a body buffering it
//! (the next callback sees everything buffered) up to the configured limit, local replies
//! forcing a stop, and `on_log` before `on_done`/`on_delete`.

use crate::headers::HeaderMap;
use crate::state::{Access, Context, Deferred, DeferredAction, HttpStreamState};
use crate::vm::{Vm, VmFailed};
use pwx_abi::enums::interpret;
use pwx_abi::{FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus, MapType};

/// What the filter decided for the data it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow<T> {
    /// Pass the (possibly modified) data on.
    Continue(T),
    /// Stop iteration: the data stays with this filter until it resumes the stream (or a
    /// local reply replaces the response).
    Stop,
    /// Buffering the body would exceed the limit: Envoy answers 413 (request) or 500
    /// (response) itself.
    BufferOverflow,
}

/// The result of one stream callback.
#[derive(Debug)]
pub struct Step<T> {
    /// What happens to the data.
    pub flow: Flow<T>,
    /// Actions the module asked for during the callback (continue, local reply, …), in order.
    pub deferred: Vec<Deferred>,
}

impl<T> Step<T> {
    /// The local reply this stream's filter asked for in this callback, if any.
    pub fn local_reply(&self, context_id: u32) -> Option<&crate::state::LocalReply> {
        self.deferred.iter().find_map(|d| match &d.action {
            DeferredAction::LocalReply(reply) if d.context_id == context_id => Some(reply),
            _ => None,
        })
    }
}

/// What a stream held while paused, handed back when it resumes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Headers stopped in their callback.
    pub headers: Option<HeaderMap>,
    /// Body buffered while paused.
    pub body: Option<Vec<u8>>,
    /// Trailers stopped in their callback.
    pub trailers: Option<HeaderMap>,
}

/// Which direction of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to upstream (decoder path).
    Request,
    /// Upstream to client (encoder path).
    Response,
}

impl Direction {
    fn maps(self) -> (MapType, MapType) {
        match self {
            Direction::Request => (MapType::HttpRequestHeaders, MapType::HttpRequestTrailers),
            Direction::Response => (MapType::HttpResponseHeaders, MapType::HttpResponseTrailers),
        }
    }
}

/// Per-direction pause bookkeeping kept in the stream state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Paused {
    #[default]
    No,
    /// Headers returned Pause: no body callbacks until resumed; body is buffered.
    Headers,
    /// A body callback returned Pause: the body accumulates.
    Body,
    /// Trailers returned Pause.
    Trailers,
}

impl Vm {
    fn http_mut(&mut self, context_id: u32) -> Option<&mut HttpStreamState> {
        match self.store.data_mut().contexts.get_mut(&context_id)? {
            Context::Stream(stream) => Some(&mut stream.http),
            Context::Root(_) => None,
        }
    }

    fn paused_mut(&mut self, context_id: u32, direction: Direction) -> Option<&mut Paused> {
        let http = self.http_mut(context_id)?;
        Some(match direction {
            Direction::Request => &mut http.request_paused,
            Direction::Response => &mut http.response_paused,
        })
    }

    fn buffer_limit(&self, direction: Direction) -> usize {
        match direction {
            Direction::Request => self.limits.request_buffer_bytes,
            Direction::Response => self.limits.response_buffer_bytes,
        }
    }

    /// Runs `proxy_on_request_headers` / `proxy_on_response_headers`.
    pub fn on_headers(
        &mut self,
        context_id: u32,
        direction: Direction,
        headers: HeaderMap,
        end_of_stream: bool,
    ) -> Result<Step<HeaderMap>, VmFailed> {
        if !self.ensure_created(context_id)? {
            return Ok(Step {
                flow: Flow::Continue(headers),
                deferred: Vec::new(),
            });
        }
        let (map, _) = direction.maps();
        let count = headers.len() as i32;
        if let Some(http) = self.http_mut(context_id) {
            http.maps[map as usize] = headers;
            http.access[map as usize] = Access::ReadWrite;
            http.in_headers = Some(direction);
        }
        let eos = i32::from(end_of_stream);
        let ctx = context_id as i32;
        let raw = match (direction, self.abi() == pwx_abi::AbiVersion::V0_1_0) {
            (Direction::Request, false) => self.call(
                "proxy_on_request_headers",
                |c| c.on_request_headers.as_ref(),
                context_id,
                (ctx, count, eos),
            ),
            (Direction::Request, true) => self.call(
                "proxy_on_request_headers",
                |c| c.on_request_headers_v1.as_ref(),
                context_id,
                (ctx, count),
            ),
            (Direction::Response, false) => self.call(
                "proxy_on_response_headers",
                |c| c.on_response_headers.as_ref(),
                context_id,
                (ctx, count, eos),
            ),
            (Direction::Response, true) => self.call(
                "proxy_on_response_headers",
                |c| c.on_response_headers_v1.as_ref(),
                context_id,
                (ctx, count),
            ),
        };
        if let Some(http) = self.http_mut(context_id) {
            http.in_headers = None;
        }
        let raw = raw?;
        let forced_stop = self.store.data().local_reply_sent;
        let status = interpret::headers(raw.unwrap_or(0) as u32);
        let stop = forced_stop
            || !matches!(
                status,
                FilterHeadersStatus::Continue | FilterHeadersStatus::ContinueAndEndStream
            );
        let deferred = self.take_deferred();
        let flow = if stop {
            if let Some(paused) = self.paused_mut(context_id, direction) {
                *paused = Paused::Headers;
            }
            Flow::Stop
        } else {
            Flow::Continue(self.release_map(context_id, map))
        };
        Ok(Step { flow, deferred })
    }

    /// Hands a map back to the embedder: Envoy forgets its pointer once the filter continues,
    /// but keeps a copy for properties and the access log.
    fn release_map(&mut self, context_id: u32, map: MapType) -> HeaderMap {
        match self.http_mut(context_id) {
            Some(http) => {
                http.access[map as usize] = Access::None;
                http.maps[map as usize].clone()
            }
            None => HeaderMap::new(),
        }
    }

    /// Runs `proxy_on_request_body` / `proxy_on_response_body` for a chunk.
    pub fn on_body(
        &mut self,
        context_id: u32,
        direction: Direction,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Step<Vec<u8>>, VmFailed> {
        let created = matches!(self.store.data().contexts.get(&context_id), Some(Context::Stream(s)) if s.created);
        if !created {
            // Data callbacks are skipped while the module has no context for the stream.
            return Ok(Step {
                flow: Flow::Continue(chunk.to_vec()),
                deferred: Vec::new(),
            });
        }
        let limit = self.buffer_limit(direction);
        let paused = self
            .paused_mut(context_id, direction)
            .map(|p| *p)
            .unwrap_or_default();
        let Some(http) = self.http_mut(context_id) else {
            return Ok(Step {
                flow: Flow::Continue(chunk.to_vec()),
                deferred: Vec::new(),
            });
        };
        let body = match direction {
            Direction::Request => &mut http.request_body,
            Direction::Response => &mut http.response_body,
        };
        // Paused headers stop the whole stream: the body is buffered without callbacks;
        // paused bodies accumulate and the callback sees everything buffered.
        if !matches!(paused, Paused::Headers | Paused::Body) {
            body.clear();
        }
        if body.len() + chunk.len() > limit {
            return Ok(Step {
                flow: Flow::BufferOverflow,
                deferred: Vec::new(),
            });
        }
        body.extend_from_slice(chunk);
        let size = body.len() as i32;
        if paused == Paused::Headers {
            return Ok(Step {
                flow: Flow::Stop,
                deferred: Vec::new(),
            });
        }
        let (_, trailers) = direction.maps();
        if let Some(http) = self.http_mut(context_id) {
            // The last body callback may create trailers by writing them.
            http.creatable[trailers as usize] =
                end_of_stream && http.maps[trailers as usize].is_empty();
        }
        let args = (context_id as i32, size, i32::from(end_of_stream));
        let raw = match direction {
            Direction::Request => self.call(
                "proxy_on_request_body",
                |c| c.on_request_body.as_ref(),
                context_id,
                args,
            ),
            Direction::Response => self.call(
                "proxy_on_response_body",
                |c| c.on_response_body.as_ref(),
                context_id,
                args,
            ),
        }?;
        let forced_stop = self.store.data().local_reply_sent;
        let status = interpret::data(raw.unwrap_or(0) as u32);
        let deferred = self.take_deferred();
        let Some(http) = self.http_mut(context_id) else {
            return Ok(Step {
                flow: Flow::Stop,
                deferred,
            });
        };
        http.creatable[trailers as usize] = false;
        let held = &mut http.watermarked[direction as usize];
        let (body, paused) = match direction {
            Direction::Request => (&mut http.request_body, &mut http.request_paused),
            Direction::Response => (&mut http.response_body, &mut http.response_paused),
        };
        let flow = match status {
            _ if forced_stop => Flow::Stop,
            FilterDataStatus::Continue => {
                *paused = Paused::No;
                let mut passed = std::mem::take(held);
                passed.append(body);
                Flow::Continue(passed)
            }
            FilterDataStatus::StopIterationAndBuffer => {
                *paused = Paused::Body;
                Flow::Stop
            }
            FilterDataStatus::StopIterationAndWatermark => {
                held.append(body);
                *paused = Paused::Body;
                Flow::Stop
            }
            FilterDataStatus::StopIterationNoBuffer => {
                // Not buffered: the next callback sees only its own chunk.
                body.clear();
                *paused = Paused::No;
                Flow::Stop
            }
        };
        Ok(Step { flow, deferred })
    }

    /// Runs `proxy_on_request_trailers` / `proxy_on_response_trailers`.
    pub fn on_trailers(
        &mut self,
        context_id: u32,
        direction: Direction,
        trailers: HeaderMap,
    ) -> Result<Step<HeaderMap>, VmFailed> {
        let created = matches!(self.store.data().contexts.get(&context_id), Some(Context::Stream(s)) if s.created);
        if !created {
            return Ok(Step {
                flow: Flow::Continue(trailers),
                deferred: Vec::new(),
            });
        }
        let (_, map) = direction.maps();
        let count = trailers.len() as i32;
        if let Some(http) = self.http_mut(context_id) {
            http.maps[map as usize] = trailers;
            http.access[map as usize] = Access::ReadWrite;
        }
        let args = (context_id as i32, count);
        let raw = match direction {
            Direction::Request => self.call(
                "proxy_on_request_trailers",
                |c| c.on_request_trailers.as_ref(),
                context_id,
                args,
            ),
            Direction::Response => self.call(
                "proxy_on_response_trailers",
                |c| c.on_response_trailers.as_ref(),
                context_id,
                args,
            ),
        }?;
        let forced_stop = self.store.data().local_reply_sent;
        let deferred = self.take_deferred();
        let flow = if forced_stop
            || interpret::trailers(raw.unwrap_or(0) as u32) != FilterTrailersStatus::Continue
        {
            if let Some(paused) = self.paused_mut(context_id, direction) {
                *paused = Paused::Trailers;
            }
            Flow::Stop
        } else {
            Flow::Continue(self.release_map(context_id, map))
        };
        Ok(Step { flow, deferred })
    }

    /// Called by the embedder when the module resumed a direction (a `ContinueRequest` /
    /// `ContinueResponse` deferred action): hands back what the stream held.
    pub fn resume(&mut self, context_id: u32, direction: Direction) -> Held {
        let (headers_map, trailers_map) = direction.maps();
        let Some(http) = self.http_mut(context_id) else {
            return Held::default();
        };
        let paused = match direction {
            Direction::Request => std::mem::take(&mut http.request_paused),
            Direction::Response => std::mem::take(&mut http.response_paused),
        };
        let mut body = std::mem::take(&mut http.watermarked[direction as usize]);
        body.append(match direction {
            Direction::Request => &mut http.request_body,
            Direction::Response => &mut http.response_body,
        });
        let body = (!body.is_empty()).then_some(body);
        for map in [headers_map, trailers_map] {
            http.access[map as usize] = Access::None;
        }
        match paused {
            Paused::No => Held::default(),
            Paused::Headers => Held {
                headers: Some(http.maps[headers_map as usize].clone()),
                body,
                trailers: None,
            },
            Paused::Body => Held {
                headers: None,
                body,
                trailers: None,
            },
            Paused::Trailers => Held {
                headers: None,
                body,
                trailers: Some(http.maps[trailers_map as usize].clone()),
            },
        }
    }

    /// Runs `proxy_on_log` (creating the module's context first if the stream never reached
    /// this filter, as Envoy does at access-log time). Request headers, response headers and
    /// response trailers are readable; request trailers are not.
    pub fn on_log(&mut self, context_id: u32) -> Result<Vec<Deferred>, VmFailed> {
        if !self.ensure_created(context_id)? {
            return Ok(Vec::new());
        }
        if let Some(http) = self.http_mut(context_id) {
            http.in_log = true;
            http.access = [
                Access::ReadOnly,
                Access::None,
                Access::ReadOnly,
                Access::ReadOnly,
            ];
        }
        let result = self.call(
            "proxy_on_log",
            |c| c.on_log.as_ref(),
            context_id,
            context_id as i32,
        );
        if let Some(http) = self.http_mut(context_id) {
            http.in_log = false;
            http.access = [Access::None; 4];
        }
        result?;
        Ok(self.take_deferred())
    }

    /// Updates the facts properties read (e.g. the upstream address once routed).
    pub fn update_stream_info(
        &mut self,
        context_id: u32,
        update: impl FnOnce(&mut crate::stream_info::StreamInfo),
    ) {
        if let Some(http) = self.http_mut(context_id) {
            update(&mut http.info);
        }
    }

    /// Makes the final maps visible to `on_log` and properties (the embedder passes what the
    /// whole chain ended with).
    pub fn set_final_maps(
        &mut self,
        context_id: u32,
        request_headers: Option<&HeaderMap>,
        response_headers: Option<&HeaderMap>,
        response_trailers: Option<&HeaderMap>,
    ) {
        if let Some(http) = self.http_mut(context_id) {
            for (map, value) in [
                (MapType::HttpRequestHeaders, request_headers),
                (MapType::HttpResponseHeaders, response_headers),
                (MapType::HttpResponseTrailers, response_trailers),
            ] {
                if let Some(value) = value {
                    http.maps[map as usize] = value.clone();
                }
            }
        }
    }
}
