//! The overview: what an operator looks at first.

use super::{Nav, Notice, Params, Session, badge, failure, layout, raw, respond, when};
use crate::http::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use maud::html;
use tributary_domain::model::connection::ConnectionStatus;
use tributary_domain::model::console::Overview;

pub(super) async fn page(State(s): State<AppState>, session: Session, q: Params) -> Response {
    let o = match s.platform.console().overview().await {
        Ok(o) => o,
        Err(e) => return failure(e),
    };
    let now = Utc::now();
    let notice = Notice::from_query(&q);
    let pulls_total: u64 = o.pulls_by_status.iter().map(|(_, n)| n).sum();
    let body = html! {
        h1 { "Overview" }
        div.cards {
            section.card aria-labelledby="companies-h" {
                h2 #companies-h { "Companies" }
                p.big { (o.companies) }
                a href="/console/companies" { "All companies" }
            }
            section.card aria-labelledby="connections-h" {
                h2 #connections-h { "Connections by status" }
                dl.pairs {
                    @for st in ConnectionStatus::ALL {
                        dt { (badge(st.as_str())) }
                        dd { (Overview::count(&o.connections_by_status, st.as_str())) }
                    }
                }
            }
            section.card aria-labelledby="pulls-h" {
                h2 #pulls-h { "Pulls, last 24 hours" }
                @if o.pulls_by_status.is_empty() { p.muted { "None." } }
                dl.pairs {
                    @for (st, n) in &o.pulls_by_status {
                        dt { (badge(st)) }
                        dd { (n) }
                    }
                }
                p.muted.small { (pulls_total) " in all" }
            }
            section.card aria-labelledby="webhooks-h" {
                h2 #webhooks-h { "Webhook deliveries" }
                dl.pairs {
                    @for st in ["Pending", "Failed", "Delivered"] {
                        dt { (badge(st)) }
                        dd { (Overview::count(&o.deliveries_by_status, st)) }
                    }
                }
                a href="/console/webhooks" { "Webhooks" }
            }
        }
        h2 { "Data types failing now" }
        @if o.failing.is_empty() {
            p.muted #failing-none { "None: every data type's latest pull succeeded." }
        } @else {
            div.table-wrap {
                table #failing {
                    caption.skip { "Data types whose latest finished pull failed" }
                    thead { tr { th { "Company" } th { "Data type" } th { "Status" } th { "Error" } th { "When" } } }
                    tbody {
                        @for f in &o.failing {
                            tr {
                                td { a href=(format!("/console/companies/{}", f.company_id)) { (f.company_name) } }
                                td { code { (f.data_type.key()) } }
                                td { (badge(f.status.as_str())) }
                                td { (f.error_message.as_deref().unwrap_or("")) }
                                td.small { (when(f.completed)) }
                            }
                        }
                    }
                }
            }
        }
        h2 #chart-h { "Records written per minute, last 24 hours" }
        figure.chart.card aria-labelledby="chart-h" {
            (raw(chart(&o.records_per_minute, now)))
            figcaption.muted.small {
                (o.records_per_minute.iter().map(|(_, n)| n).sum::<u64>()) " records written in the last 24 hours (each counted at its latest write); peak "
                (o.records_per_minute.iter().map(|(_, n)| *n).max().unwrap_or(0)) " in one minute."
            }
        }
    };
    respond(StatusCode::OK, layout(&session, Nav::Overview, "Overview", notice.as_ref(), body))
}

const W: f64 = 960.0;
const H: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;

/// A bar chart of counts per minute over the 24 hours before `now`, as an SVG (rendered on the
/// server: no script, readable by screen readers through its title and description).
pub(crate) fn chart(per_minute: &[(DateTime<Utc>, u64)], now: DateTime<Utc>) -> String {
    let end = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now) + TimeDelta::minutes(1);
    let start = end - TimeDelta::hours(24);
    let minutes = 24 * 60;
    let max = per_minute.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let ceiling = nice(max);
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - TOP - BOTTOM;
    let bar_w = plot_w / f64::from(minutes);
    let mut bars = String::new();
    for (t, n) in per_minute {
        let i = (*t - start).num_minutes();
        if !(0..i64::from(minutes)).contains(&i) || *n == 0 {
            continue;
        }
        #[allow(clippy::cast_precision_loss)]
        let h = (*n as f64 / ceiling as f64) * plot_h;
        #[allow(clippy::cast_precision_loss)]
        let x = LEFT + i as f64 * bar_w;
        bars.push_str(&format!(
            "<rect x=\"{x:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{h:.2}\"><title>{} UTC: {n}</title></rect>",
            TOP + plot_h - h,
            bar_w.max(1.0),
            t.format("%H:%M")
        ));
    }
    let mut axes = String::new();
    for k in 0..=4u32 {
        let v = ceiling * u64::from(k) / 4;
        let y = TOP + plot_h - plot_h * f64::from(k) / 4.0;
        axes.push_str(&format!(
            "<line x1=\"{LEFT}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/><text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            W - 8.0,
            LEFT - 6.0,
            y + 4.0
        ));
    }
    for h in (0..=24).step_by(4) {
        let x = LEFT + plot_w * f64::from(h) / 24.0;
        let t = start + TimeDelta::hours(i64::from(h));
        let anchor = match h {
            0 => "start",
            24 => "end",
            _ => "middle",
        };
        axes.push_str(&format!("<text x=\"{x:.1}\" y=\"{:.0}\" text-anchor=\"{anchor}\">{}</text>", H - 8.0, t.format("%H:%M")));
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"chart-title chart-desc\" font-size=\"11\" fill=\"#4b5563\">\
         <title id=\"chart-title\">Records written per minute</title><desc id=\"chart-desc\">From {} to {} UTC; the highest minute has {max} records.</desc>\
         {axes}<g fill=\"#4338ca\" class=\"bars\">{bars}</g></svg>",
        start.format("%Y-%m-%d %H:%M"),
        end.format("%Y-%m-%d %H:%M"),
    )
}

/// The axis top: 1, 2 or 5 times a power of ten, at least `n`.
fn nice(n: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * p >= n {
                return m * p;
            }
        }
        p = p.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_draws_one_bar_per_minute_with_writes_scaled_to_a_round_axis() {
        let now: DateTime<Utc> = "2026-12-06T12:00:30Z".parse().unwrap();
        let svg = chart(&[("2026-12-06T11:00:00Z".parse().unwrap(), 30), ("2026-12-06T11:59:00Z".parse().unwrap(), 70)], now);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("<title>11:59 UTC: 70</title>") && svg.contains("<title>11:00 UTC: 30</title>"), "{svg}");
        assert!(svg.contains(">100</text>"), "the axis tops at 100: {svg}");
        // Outside the 24 hours: not drawn.
        assert_eq!(chart(&[("2026-12-05T11:00:00Z".parse().unwrap(), 5)], now).matches("<rect").count(), 0);
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!([1, 3, 7, 20, 21, 999].map(nice), [1, 5, 10, 20, 50, 1000]);
    }
}
