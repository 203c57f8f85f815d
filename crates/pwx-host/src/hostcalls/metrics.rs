//! Metrics: define, increment, record, get, with Envoy's ids (`type + 4k`) and rules.

use super::enter;
use crate::memory::{self, HostResult};
use crate::state::HostState;
use pwx_abi::{HostCall, MetricType, Status};
use wasmtime::Caller;

pub(crate) fn proxy_define_metric(
    mut caller: Caller<'_, HostState>,
    kind: i32,
    name_ptr: i32,
    name_len: i32,
    ret_id: i32,
) -> HostResult {
    enter(&caller, HostCall::DefineMetric)?;
    let Some(kind) = MetricType::from_u32(kind as u32) else {
        return Ok(Status::BadArgument.as_i32());
    };
    let name = match memory::read(&caller, name_ptr, name_len) {
        Ok(name) => String::from_utf8_lossy(&name).into_owned(),
        Err(status) => return Ok(status.as_i32()),
    };
    let state = caller.data_mut();
    let Ok(metric) = state.services.metrics.define(&name, kind) else {
        return Ok(Status::BadArgument.as_i32());
    };
    // Every definition gets a new id, even for a name defined before.
    let seq = &mut state.next_metric_seq[kind as usize];
    let id = kind as u32 + 4 * *seq;
    *seq += 1;
    state.metric_ids.insert(id, metric);
    Ok(memory::status_of(memory::write_u32(
        &mut caller,
        ret_id,
        id,
    )))
}

pub(crate) fn proxy_increment_metric(
    caller: Caller<'_, HostState>,
    id: i32,
    delta: i64,
) -> HostResult {
    enter(&caller, HostCall::IncrementMetric)?;
    let Some(metric) = caller.data().metric_ids.get(&(id as u32)) else {
        return Ok(Status::NotFound.as_i32());
    };
    Ok(match metric.kind {
        MetricType::Counter if delta > 0 => {
            metric.add(delta);
            Status::Ok
        }
        MetricType::Gauge => {
            metric.add(delta);
            Status::Ok
        }
        MetricType::Counter | MetricType::Histogram => Status::BadArgument,
    }
    .as_i32())
}

pub(crate) fn proxy_record_metric(
    caller: Caller<'_, HostState>,
    id: i32,
    value: i64,
) -> HostResult {
    enter(&caller, HostCall::RecordMetric)?;
    let Some(metric) = caller.data().metric_ids.get(&(id as u32)) else {
        return Ok(Status::NotFound.as_i32());
    };
    match metric.kind {
        MetricType::Counter => metric.add(value),
        MetricType::Gauge => metric.set(value),
        MetricType::Histogram => metric.record(value as u64),
    }
    Ok(Status::Ok.as_i32())
}

pub(crate) fn proxy_get_metric(
    mut caller: Caller<'_, HostState>,
    id: i32,
    ret_value: i32,
) -> HostResult {
    enter(&caller, HostCall::GetMetric)?;
    // Envoy reads the type from the id's low bits first: a histogram id is refused even
    // when no such metric exists.
    if id as u32 & 3 == MetricType::Histogram as u32 {
        return Ok(Status::BadArgument.as_i32());
    }
    let value = match caller.data().metric_ids.get(&(id as u32)) {
        None => return Ok(Status::NotFound.as_i32()),
        Some(metric) if metric.kind == MetricType::Histogram => {
            return Ok(Status::BadArgument.as_i32());
        }
        Some(metric) => metric.value() as u64,
    };
    Ok(memory::status_of(memory::write_u64(
        &mut caller,
        ret_value,
        value,
    )))
}
