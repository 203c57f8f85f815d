//! One direction of a stream through its filters, frame by frame, as Envoy's filter manager
//! iterates: headers, each body chunk as it arrives, trailers. A filter that stops holds what
//! it stopped; what continues goes on to the next filter, and what leaves the last filter is
//! handed to the caller (the upstream for requests, the client for responses).
//!
//! Everything here is synchronous: callbacks run to completion on the worker thread; waiting
//! for a paused filter is the driver's business (`super::driver`), which calls `resume` when
//! the filter continues.

use crate::worker::Worker;
use bytes::{Bytes, BytesMut};
use pwx_host::{DeferredAction, Direction, Flow, HeaderMap, Held, LocalReply, Step, VmFailed};
use std::rc::Rc;

/// A piece of one direction of a stream.
#[derive(Debug)]
pub(crate) enum Frame {
    /// Headers, and whether the message ends with them.
    Headers(HeaderMap, bool),
    /// A body chunk, and whether it is the last one.
    Data(Bytes, bool),
    /// Trailers (always the end of the message).
    Trailers(HeaderMap),
}

/// Why a direction stopped for good at a filter.
#[derive(Debug)]
pub(crate) enum Halt {
    /// The filter at chain position `.0` answered with a local reply.
    Reply(usize, LocalReply),
    /// The VM of the filter at chain position `.0` failed.
    Failed(usize),
    /// Buffering at chain position `.0` exceeded the body limit.
    Overflow(usize),
    /// A filter reset the stream from its own callback.
    Reset,
}

/// Where a filter stands in this direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Passing frames on.
    Open,
    /// Stopped in its headers callback: later frames queue in front of it (Envoy's
    /// StopAllIterationAndWatermark) and reach it, merged, when it resumes.
    HeadersStopped,
    /// Stopped on a body chunk before the end: the host accumulates the body, and the next
    /// chunk's callback sees all of it.
    Buffering,
    /// Stopped on the last body chunk: waits for the filter to resume.
    EndStopped,
    /// Stopped in its trailers callback: waits for the filter to resume.
    TrailersStopped,
}

/// Frames that arrived while a filter held its headers.
#[derive(Default)]
struct Queued {
    data: BytesMut,
    has_data: bool,
    end: bool,
    trailers: Option<HeaderMap>,
}

/// One filter in this direction.
struct Slot {
    /// Position in the listener's chain (request order).
    position: usize,
    /// The worker's filter index.
    filter: usize,
    /// The stream's context in that filter (`None`: bypassed after a fail-open failure).
    context: Option<u32>,
    state: State,
    /// Whether the message ended with the headers this filter stopped.
    headers_end: bool,
    queued: Queued,
}

/// One direction of one stream through its filters.
pub(crate) struct Pipeline {
    direction: Direction,
    /// In processing order: chain order for requests, reversed for responses.
    slots: Vec<Slot>,
}

/// What a callback decided, once its deferred actions were applied.
enum After<T> {
    Continue(T),
    Stop,
    Reply(LocalReply),
    Failed,
    Overflow,
    Reset,
}

impl Pipeline {
    /// The pipeline of `direction` over the chain `filters` / `contexts` (request order).
    pub(crate) fn new(direction: Direction, filters: &[usize], contexts: &[Option<u32>]) -> Self {
        let mut slots: Vec<Slot> = filters
            .iter()
            .zip(contexts)
            .enumerate()
            .map(|(position, (&filter, &context))| Slot {
                position,
                filter,
                context,
                state: State::Open,
                headers_end: false,
                queued: Queued::default(),
            })
            .collect();
        if direction == Direction::Response {
            slots.reverse();
        }
        Pipeline { direction, slots }
    }

    /// The processing index of chain position `position`, or `len()` for "after every filter".
    pub(crate) fn index_of(&self, position: Option<usize>) -> usize {
        position
            .and_then(|p| self.slots.iter().position(|s| s.position == p))
            .unwrap_or(self.slots.len())
    }

    /// The processing index just after chain position `position` (the filters a response
    /// replaced at `position` still goes through).
    pub(crate) fn index_after(&self, position: usize) -> usize {
        self.index_of(Some(position)) + 1
    }

    /// The chain position of the first filter waiting for a resume, if any.
    pub(crate) fn waiting(&self) -> Option<usize> {
        self.slots
            .iter()
            .find(|s| s.state != State::Open)
            .map(|s| s.position)
    }

    /// Bytes queued in front of filters that hold their headers (flow control: the driver
    /// stops reading this direction's source past the buffer limit, as Envoy's watermarks do).
    pub(crate) fn queued_bytes(&self) -> usize {
        self.slots.iter().map(|s| s.queued.data.len()).sum()
    }

    /// Runs `frame` through the filters from processing index `from`; what leaves the last
    /// filter is appended to `out`.
    pub(crate) fn run(
        &mut self,
        worker: &Rc<Worker>,
        from: usize,
        frame: Frame,
        out: &mut Vec<Frame>,
    ) -> Result<(), Halt> {
        let mut frame = frame;
        let mut index = from;
        while index < self.slots.len() {
            let direction = self.direction;
            let slot = &mut self.slots[index];
            let Some(context) = slot.context else {
                index += 1;
                continue;
            };
            if slot.state == State::HeadersStopped
                || slot.state == State::EndStopped
                || slot.state == State::TrailersStopped
            {
                slot.queue(frame);
                return Ok(());
            }
            let (filter, position) = (slot.filter, slot.position);
            frame = match frame {
                Frame::Headers(headers, end) => {
                    let result = worker
                        .chain
                        .borrow_mut()
                        .vm_mut(filter)
                        .on_headers(context, direction, headers, end);
                    match settle(worker, filter, context, direction, result) {
                        After::Continue(headers) => Frame::Headers(headers, end),
                        After::Stop => {
                            self.stop(worker, index, State::HeadersStopped);
                            self.slots[index].headers_end = end;
                            return Ok(());
                        }
                        other => return Err(other.halt(position)),
                    }
                }
                Frame::Data(chunk, end) => {
                    let result = worker
                        .chain
                        .borrow_mut()
                        .vm_mut(filter)
                        .on_body(context, direction, &chunk, end);
                    match settle(worker, filter, context, direction, result) {
                        After::Continue(body) => {
                            self.open(worker, index);
                            Frame::Data(Bytes::from(body), end)
                        }
                        After::Stop => {
                            let state = if end {
                                State::EndStopped
                            } else {
                                State::Buffering
                            };
                            self.stop(worker, index, state);
                            return Ok(());
                        }
                        other => return Err(other.halt(position)),
                    }
                }
                Frame::Trailers(trailers) => {
                    let result = worker
                        .chain
                        .borrow_mut()
                        .vm_mut(filter)
                        .on_trailers(context, direction, trailers);
                    match settle(worker, filter, context, direction, result) {
                        After::Continue(trailers) => {
                            // Trailers that continue release a body the filter was buffering.
                            if self.slots[index].state == State::Buffering {
                                let held = worker
                                    .chain
                                    .borrow_mut()
                                    .vm_mut(filter)
                                    .resume(context, direction);
                                self.open(worker, index);
                                if let Some(body) = held.body {
                                    self.run(
                                        worker,
                                        index + 1,
                                        Frame::Data(Bytes::from(body), false),
                                        out,
                                    )?;
                                }
                            }
                            Frame::Trailers(trailers)
                        }
                        After::Stop => {
                            self.stop(worker, index, State::TrailersStopped);
                            return Ok(());
                        }
                        other => return Err(other.halt(position)),
                    }
                }
            };
            index += 1;
        }
        out.push(frame);
        Ok(())
    }

    /// The filter `filter` (context `context`) resumed this direction, handing back what it
    /// held: it goes on from the next filter, and what queued in front of the filter while it
    /// held its headers reaches it now, merged into one body call as in Envoy.
    pub(crate) fn resume(
        &mut self,
        worker: &Rc<Worker>,
        filter: usize,
        context: u32,
        held: Held,
        out: &mut Vec<Frame>,
    ) -> Result<(), Halt> {
        let Some(index) = self
            .slots
            .iter()
            .position(|s| s.filter == filter && s.context == Some(context))
        else {
            return Ok(());
        };
        let state = self.slots[index].state;
        self.slots[index].state = State::Open;
        match state {
            State::Open => Ok(()),
            State::HeadersStopped => {
                let end = self.slots[index].headers_end;
                let queued = std::mem::take(&mut self.slots[index].queued);
                if let Some(headers) = held.headers {
                    self.run(worker, index + 1, Frame::Headers(headers, end), out)?;
                }
                if queued.has_data {
                    let end = queued.end && queued.trailers.is_none();
                    self.run(worker, index, Frame::Data(queued.data.freeze(), end), out)?;
                }
                if let Some(trailers) = queued.trailers {
                    self.run(worker, index, Frame::Trailers(trailers), out)?;
                }
                Ok(())
            }
            State::Buffering => match held.body {
                Some(body) => self.run(
                    worker,
                    index + 1,
                    Frame::Data(Bytes::from(body), false),
                    out,
                ),
                None => Ok(()),
            },
            State::EndStopped => {
                let body = held.body.unwrap_or_default();
                self.run(worker, index + 1, Frame::Data(Bytes::from(body), true), out)
            }
            State::TrailersStopped => {
                if let Some(body) = held.body {
                    self.run(
                        worker,
                        index + 1,
                        Frame::Data(Bytes::from(body), false),
                        out,
                    )?;
                }
                let trailers = held.trailers.unwrap_or_default();
                self.run(worker, index + 1, Frame::Trailers(trailers), out)
            }
        }
    }

    /// Forgets what the filters from processing index `from` held: a local reply replaces
    /// the message they were handling.
    pub(crate) fn reopen(&mut self, worker: &Rc<Worker>, from: usize) {
        for index in from..self.slots.len() {
            self.slots[index].queued = Queued::default();
            self.open(worker, index);
        }
    }

    fn stop(&mut self, worker: &Rc<Worker>, index: usize, state: State) {
        let slot = &mut self.slots[index];
        slot.state = state;
        if let Some(context) = slot.context {
            worker.set_stopped(slot.filter, context, self.direction, true);
        }
    }

    fn open(&mut self, worker: &Rc<Worker>, index: usize) {
        let slot = &mut self.slots[index];
        if slot.state != State::Open {
            slot.state = State::Open;
            if let Some(context) = slot.context {
                worker.set_stopped(slot.filter, context, self.direction, false);
            }
        }
    }
}

impl Slot {
    /// Keeps a frame that arrived while this filter holds the stream.
    fn queue(&mut self, frame: Frame) {
        match frame {
            Frame::Data(chunk, end) => {
                self.queued.data.extend_from_slice(&chunk);
                self.queued.has_data = true;
                self.queued.end |= end;
            }
            Frame::Trailers(trailers) => {
                self.queued.trailers = Some(trailers);
                self.queued.end = true;
            }
            Frame::Headers(..) => {
                tracing::debug!("headers arrived twice in one direction; ignored");
            }
        }
    }
}

impl<T> After<T> {
    /// The halt a reply, failure or overflow at chain position `position` means (called only
    /// for those three).
    fn halt(self, position: usize) -> Halt {
        match self {
            After::Reply(reply) => Halt::Reply(position, reply),
            After::Overflow => Halt::Overflow(position),
            After::Reset => Halt::Reset,
            After::Failed | After::Continue(_) | After::Stop => Halt::Failed(position),
        }
    }
}

/// Applies a callback's deferred actions and reads its decision.
fn settle<T>(
    worker: &Rc<Worker>,
    filter: usize,
    context: u32,
    direction: Direction,
    result: Result<Step<T>, VmFailed>,
) -> After<T> {
    let step = match result {
        Ok(step) => step,
        Err(_) => {
            worker.fail_waiters(filter);
            return After::Failed;
        }
    };
    let reply = step.local_reply(context).cloned();
    // `close_stream` on its own stream resets it; so does resuming the response from a
    // request callback, before there is one (Envoy closes the connection).
    let reset = step.deferred.iter().any(|d| {
        d.context_id == context
            && match d.action {
                DeferredAction::ResetStream => true,
                DeferredAction::ContinueResponse => direction == Direction::Request,
                _ => false,
            }
    });
    worker.apply(filter, step.deferred, Some(context));
    if let Some(reply) = reply {
        return After::Reply(reply);
    }
    if reset {
        return After::Reset;
    }
    match step.flow {
        Flow::Continue(data) => After::Continue(data),
        Flow::Stop => After::Stop,
        Flow::BufferOverflow => After::Overflow,
    }
}
