//! One exchange through the filter with Envoy's order and semantics: request headers, body
//! (a content-length body arrives as `(n, false)` then `(0, true)`), trailers; the upstream or
//! the filter's local reply; the response path; `on_log`; `on_done`/`on_delete`. Callouts are
//! answered as soon as the callback that made them returns; a paused direction resumes when the
//! filter continues it (its held data is handed back, as Envoy does).

use crate::error::Error;
use crate::exchange::{Callout, Outcome, Request, Response, Upstream, UpstreamRequest, pairs};
use crate::filter::Filter;
use pwx_host::vm::CalloutResponse;
use pwx_host::{
    Deferred, DeferredAction, Direction, Flow, HeaderMap, Held, LocalReply, Step, StreamInfo,
    VmFailed,
};
use std::collections::VecDeque;

/// What deferred actions did to the current stream.
pub(crate) struct StreamState {
    context: Option<u32>,
    reply: Option<LocalReply>,
    continued: [bool; 2],
    reset: bool,
    callouts: Vec<Callout>,
    /// A callout the test has no answer for (reported once the callback settled).
    pub(crate) unanswered: Option<Error>,
}

impl StreamState {
    /// State for root callbacks: no stream to act on.
    pub(crate) fn detached() -> StreamState {
        StreamState {
            context: None,
            reply: None,
            continued: [false; 2],
            reset: false,
            callouts: Vec::new(),
            unanswered: None,
        }
    }
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::Request => 0,
        Direction::Response => 1,
    }
}

/// Where one callback left the stream.
enum After<T> {
    Continue(T),
    /// Stopped and nothing resumed it yet.
    Stop,
    Resumed(Held),
    Reply(LocalReply),
    Reset,
    Overflow,
}

/// Why the stream ended early.
enum Ended {
    Reply(LocalReply),
    Reset,
    /// Body over the buffer limit: Envoy answers 413 (request) or 500 (response) itself.
    Overflow(Direction),
}

/// A stream callback's failure: the VM failed, or the test lacks something.
enum Broken {
    Vm(VmFailed),
    Test(Error),
}

impl From<VmFailed> for Broken {
    fn from(failure: VmFailed) -> Self {
        Broken::Vm(failure)
    }
}

impl From<Error> for Broken {
    fn from(error: Error) -> Self {
        Broken::Test(error)
    }
}

fn phase_error(phase: &str) -> Error {
    Error::VmFailed(format!(
        "the filter paused the stream in {phase} and nothing resumed it (no callout it made was \
         answered with a continue, no local reply): in Envoy the stream would hang until a \
         timeout"
    ))
}

impl Filter {
    /// Applies deferred actions, answering callouts as they appear (their answers may defer
    /// more actions).
    pub(crate) fn apply(
        &mut self,
        deferred: Vec<Deferred>,
        state: &mut StreamState,
    ) -> Result<(), VmFailed> {
        let mut queue: VecDeque<Deferred> = deferred.into();
        while let Some(d) = queue.pop_front() {
            let ours = state.context == Some(d.context_id);
            match d.action {
                DeferredAction::HttpCall(call) => {
                    let header = |name: &str| {
                        call.headers
                            .iter()
                            .find(|(k, _)| k == name.as_bytes())
                            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                            .unwrap_or_default()
                    };
                    let (method, path) = (header(":method"), header(":path"));
                    state.callouts.push(Callout {
                        cluster: call.cluster.clone(),
                        headers: call
                            .headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    String::from_utf8_lossy(k).into_owned(),
                                    String::from_utf8_lossy(v).into_owned(),
                                )
                            })
                            .collect(),
                        body: call.body.clone(),
                    });
                    let Some(answer) = self
                        .answers
                        .iter()
                        .find(|a| a.matches(&call.cluster, &path))
                    else {
                        if state.unanswered.is_none() {
                            state.unanswered = Some(Error::UnansweredCallout {
                                cluster: call.cluster,
                                method,
                                path,
                            });
                        }
                        continue;
                    };
                    let response = answer.response.as_ref().map(|r| CalloutResponse {
                        headers: r.header_map(),
                        body: r.body.clone(),
                        trailers: HeaderMap::new(),
                    });
                    let more = self.vm.on_http_call_response(
                        call.root_context_id,
                        call.token,
                        response,
                    )?;
                    queue.extend(more);
                }
                DeferredAction::SetTickPeriod(period) if d.context_id == self.root => {
                    self.set_tick_period(period);
                }
                DeferredAction::LocalReply(reply) if ours => {
                    state.reply.get_or_insert(reply);
                }
                DeferredAction::ContinueRequest if ours => state.continued[0] = true,
                DeferredAction::ContinueResponse if ours => state.continued[1] = true,
                DeferredAction::ResetStream if ours => state.reset = true,
                // Aimed at a stream that is gone or at the connection level (TCP actions, route
                // cache): a single HTTP filter under test has nothing for them to act on.
                _ => {}
            }
        }
        Ok(())
    }

    /// Applies a callback's actions and says where the stream stands.
    fn settle<T>(
        &mut self,
        state: &mut StreamState,
        direction: Direction,
        step: Result<Step<T>, VmFailed>,
    ) -> Result<After<T>, Broken> {
        let step = step?;
        self.apply(step.deferred, state)?;
        if let Some(error) = state.unanswered.take() {
            return Err(error.into());
        }
        if state.reset {
            return Ok(After::Reset);
        }
        if let Some(reply) = state.reply.take() {
            return Ok(After::Reply(reply));
        }
        Ok(match step.flow {
            Flow::Continue(data) => {
                state.continued[index(direction)] = false;
                After::Continue(data)
            }
            Flow::BufferOverflow => After::Overflow,
            Flow::Stop if std::mem::take(&mut state.continued[index(direction)]) => {
                let context = state.context.unwrap_or_default();
                After::Resumed(self.vm.resume(context, direction))
            }
            Flow::Stop => After::Stop,
        })
    }

    /// Sends `request` through the filter to an echoing upstream.
    pub fn send(&mut self, request: &Request) -> Result<Outcome, Error> {
        self.send_to(request, &Upstream::Echo)
    }

    /// Sends `request` through the filter to `upstream`.
    pub fn send_to(&mut self, request: &Request, upstream: &Upstream) -> Result<Outcome, Error> {
        self.take_logs();
        let mut outcome = Outcome::default();
        let context = self
            .vm
            .create_stream(
                self.root,
                StreamInfo {
                    protocol: Some("HTTP/1.1".into()),
                    ..StreamInfo::default()
                },
            )
            .ok_or_else(|| Error::VmFailed("the plugin's root context is gone".into()))?;
        let mut state = StreamState::detached();
        state.context = Some(context);
        let result = self.run(context, &mut state, request, upstream, &mut outcome);
        outcome.callouts = std::mem::take(&mut state.callouts);
        match result {
            Ok(request_headers) => {
                let response_headers = outcome_map(&outcome);
                self.vm.set_final_maps(
                    context,
                    request_headers.as_ref(),
                    Some(&response_headers),
                    None,
                );
                let ended = self
                    .vm
                    .on_log(context)
                    .map_err(Broken::Vm)
                    .and_then(|d| self.apply(d, &mut state).map_err(Broken::Vm))
                    .and_then(|()| self.vm.finish_stream(context).map_err(Broken::Vm));
                if let Err(Broken::Vm(failure)) = ended {
                    fail_closed(&mut outcome, failure);
                }
            }
            Err(Broken::Vm(failure)) => fail_closed(&mut outcome, failure),
            Err(Broken::Test(error)) => return Err(error),
        }
        outcome.logs = self.take_logs();
        Ok(outcome)
    }

    /// The stream from request headers to the response the client gets. Returns the request
    /// headers as the filter left them (for `on_log`).
    fn run(
        &mut self,
        context: u32,
        state: &mut StreamState,
        request: &Request,
        upstream: &Upstream,
        outcome: &mut Outcome,
    ) -> Result<Option<HeaderMap>, Broken> {
        if let Some(reason) = self.vm.failure() {
            return Err(Broken::Vm(VmFailed {
                reason: reason.to_string(),
            }));
        }
        let trailers = trailer_map(&request.trailers);
        let sent = match self.request_path(context, state, request, trailers)? {
            Ok(sent) => sent,
            Err(ended) => {
                self.end_early(context, state, ended, outcome)?;
                return Ok(None);
            }
        };
        let request_headers = sent.headers.clone();
        let answer = upstream.answer(&sent);
        outcome.upstream_request = Some(sent);
        let mut headers = HeaderMap::new();
        for (k, v) in &request_headers {
            headers.add(k.as_bytes(), v.as_bytes());
        }
        self.response_path(context, state, answer, outcome, false)?;
        Ok(Some(headers))
    }

    fn end_early(
        &mut self,
        context: u32,
        state: &mut StreamState,
        ended: Ended,
        outcome: &mut Outcome,
    ) -> Result<(), Broken> {
        match ended {
            Ended::Reset => outcome.reset = true,
            Ended::Overflow(direction) => {
                let status = if direction == Direction::Request {
                    413
                } else {
                    500
                };
                set_response(outcome, &Response::new(status));
            }
            Ended::Reply(reply) => {
                outcome.local_reply = Some(reply.clone());
                // A local reply runs the response path from the filter that sent it.
                self.response_path(context, state, local_response(&reply), outcome, true)?;
            }
        }
        Ok(())
    }

    /// Request headers, body and trailers through the filter; the request as it reaches the
    /// upstream, or how it ended early.
    fn request_path(
        &mut self,
        context: u32,
        state: &mut StreamState,
        request: &Request,
        trailers: Option<HeaderMap>,
    ) -> Result<Result<UpstreamRequest, Ended>, Broken> {
        let end_with_headers = request.body.is_empty() && trailers.is_none();
        let step = self.vm.on_headers(
            context,
            Direction::Request,
            request.header_map(),
            end_with_headers,
        );
        let (headers, paused) = match self.settle(state, Direction::Request, step)? {
            After::Continue(h) => (h, false),
            After::Resumed(held) => (held.headers.unwrap_or_default(), true),
            After::Stop => return Err(phase_error("request headers").into()),
            After::Reply(reply) => return Ok(Err(Ended::Reply(reply))),
            After::Reset => return Ok(Err(Ended::Reset)),
            After::Overflow => return Ok(Err(Ended::Overflow(Direction::Request))),
        };
        let body = match self.body_path(
            context,
            state,
            Direction::Request,
            &request.body,
            trailers.is_some(),
            paused,
            end_with_headers,
        )? {
            Ok(body) => body,
            Err(ended) => return Ok(Err(ended)),
        };
        let (body, trailers) = match trailers {
            None => (body, None),
            Some(map) => {
                let step = self.vm.on_trailers(context, Direction::Request, map);
                match self.settle(state, Direction::Request, step)? {
                    After::Continue(t) => {
                        let mut body = body;
                        body.extend(
                            self.vm
                                .resume(context, Direction::Request)
                                .body
                                .unwrap_or_default(),
                        );
                        (body, Some(t))
                    }
                    After::Resumed(held) => {
                        let mut body = body;
                        body.extend(held.body.unwrap_or_default());
                        (body, held.trailers)
                    }
                    After::Stop => return Err(phase_error("request trailers").into()),
                    After::Reply(reply) => return Ok(Err(Ended::Reply(reply))),
                    After::Reset => return Ok(Err(Ended::Reset)),
                    After::Overflow => return Ok(Err(Ended::Overflow(Direction::Request))),
                }
            }
        };
        Ok(Ok(UpstreamRequest {
            headers: pairs(&headers),
            body,
            trailers: trailers.as_ref().map(pairs).unwrap_or_default(),
        }))
    }

    /// A body through the filter as Envoy delivers a content-length body: `(n, false)` then
    /// `(0, true)`, or (after paused headers resumed) the whole body in one call.
    #[allow(clippy::too_many_arguments)]
    fn body_path(
        &mut self,
        context: u32,
        state: &mut StreamState,
        direction: Direction,
        body: &[u8],
        trailers_follow: bool,
        headers_paused: bool,
        ended_with_headers: bool,
    ) -> Result<Result<Vec<u8>, Ended>, Broken> {
        if ended_with_headers {
            return Ok(Ok(Vec::new()));
        }
        let chunks: Vec<(&[u8], bool)> = if headers_paused || body.is_empty() {
            vec![(body, !trailers_follow)]
        } else if trailers_follow {
            vec![(body, false)]
        } else {
            vec![(body, false), (&[], true)]
        };
        let mut out = Vec::new();
        for (chunk, end) in chunks {
            let step = self.vm.on_body(context, direction, chunk, end);
            match self.settle(state, direction, step)? {
                After::Continue(data) => out.extend(data),
                After::Resumed(held) => out.extend(held.body.unwrap_or_default()),
                After::Stop if end => {
                    return Err(phase_error(match direction {
                        Direction::Request => "the request body",
                        Direction::Response => "the response body",
                    })
                    .into());
                }
                // Buffering: the next callback sees everything so far.
                After::Stop => {}
                After::Reply(reply) => return Ok(Err(Ended::Reply(reply))),
                After::Reset => return Ok(Err(Ended::Reset)),
                After::Overflow => return Ok(Err(Ended::Overflow(direction))),
            }
        }
        Ok(Ok(out))
    }

    /// The response through the filter; the result is what the client gets.
    fn response_path(
        &mut self,
        context: u32,
        state: &mut StreamState,
        response: Response,
        outcome: &mut Outcome,
        is_local_reply: bool,
    ) -> Result<(), Broken> {
        let end_with_headers = response.body.is_empty();
        let step = self.vm.on_headers(
            context,
            Direction::Response,
            response.header_map(),
            end_with_headers,
        );
        let early = |this: &mut Filter,
                     state: &mut StreamState,
                     outcome: &mut Outcome,
                     ended: Ended|
         -> Result<(), Broken> {
            match ended {
                // A reply while answering with a reply: Envoy sends it as is.
                Ended::Reply(reply) if is_local_reply => {
                    set_response(outcome, &local_response(&reply));
                    outcome.local_reply = Some(reply);
                    Ok(())
                }
                Ended::Reply(reply) => {
                    outcome.local_reply = Some(reply.clone());
                    set_response(outcome, &local_response(&reply));
                    Ok(())
                }
                other => this.end_early(context, state, other, outcome),
            }
        };
        let (headers, paused) = match self.settle(state, Direction::Response, step)? {
            After::Continue(h) => (h, false),
            After::Resumed(held) => (held.headers.unwrap_or_default(), true),
            After::Stop => return Err(phase_error("response headers").into()),
            After::Reply(reply) => return early(self, state, outcome, Ended::Reply(reply)),
            After::Reset => return early(self, state, outcome, Ended::Reset),
            After::Overflow => {
                return early(self, state, outcome, Ended::Overflow(Direction::Response));
            }
        };
        let body = match self.body_path(
            context,
            state,
            Direction::Response,
            &response.body,
            false,
            paused,
            end_with_headers,
        )? {
            Ok(body) => body,
            Err(ended) => return early(self, state, outcome, ended),
        };
        let mut status = response.status;
        let mut out = Vec::new();
        for (k, v) in pairs(&headers) {
            if k == ":status" {
                status = v.parse().unwrap_or(status);
            } else {
                out.push((k, v));
            }
        }
        outcome.status = status;
        outcome.headers = out;
        outcome.body = body;
        Ok(())
    }
}

fn trailer_map(trailers: &[(String, String)]) -> Option<HeaderMap> {
    if trailers.is_empty() {
        return None;
    }
    let mut map = HeaderMap::new();
    for (k, v) in trailers {
        map.add(k.to_ascii_lowercase().as_bytes(), v.as_bytes());
    }
    Some(map)
}

/// The response Envoy builds for a local reply (`content-type: text/plain` for a body).
fn local_response(reply: &LocalReply) -> Response {
    let mut response = Response::new(u16::try_from(reply.status).unwrap_or(500));
    for (k, v) in &reply.headers {
        response = response.header(
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        );
    }
    if !reply.body.is_empty()
        && !response
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        response = response.header("content-type", "text/plain");
    }
    response.body(reply.body.clone())
}

fn set_response(outcome: &mut Outcome, response: &Response) {
    outcome.status = response.status;
    outcome.headers = pairs(&response.header_map())
        .into_iter()
        .filter(|(k, _)| k != ":status")
        .collect();
    outcome.body = response.body.clone();
}

fn outcome_map(outcome: &Outcome) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.add(b":status", outcome.status.to_string().as_bytes());
    for (k, v) in &outcome.headers {
        map.add(k.as_bytes(), v.as_bytes());
    }
    map
}

/// Envoy's fail-closed answer when the VM fails mid-stream.
fn fail_closed(outcome: &mut Outcome, failure: VmFailed) {
    let reply = pwx_host::failure::fail_closed_reply();
    set_response(outcome, &local_response(&reply));
    outcome.upstream_request = None;
    outcome.vm_failure = Some(failure.reason);
}
