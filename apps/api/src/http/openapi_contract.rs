//! What the handlers' annotations leave implicit, made explicit in the OpenAPI document so that a
//! client generated from it can call every operation and parse every answer: the statuses every
//! operation can answer (401, 429, 500, and 400/404 for ids, 413 for bodies, 502 where Stripe is
//! called), the formats and limits of parameters, the enums of status strings, and one typed path
//! per commerce data type instead of the generic `{dataType}` route.

use serde_json::{Value, json};
use tributary_domain::model::data_type::DataType;

/// Path parameters that are UUIDs.
const UUID_PARAMS: [&str; 5] = ["companyId", "connectionId", "datasetId", "webhookId", "apiKeyId"];

/// Operations that call Stripe and answer 502 when it cannot be reached (revocation).
const CALL_STRIPE: [&str; 2] = ["unlink-connection", "delete-connection"];

/// The commerce data types served, with Codat's operation names and record-id parameter.
const COMMERCE: [(DataType, &str, &str, &str, &str); 5] = [
    (DataType::Customers, "Customer", "list-customers", "get-customer", "customerId"),
    (DataType::Disputes, "Dispute", "list-disputes", "get-dispute", "disputeId"),
    (DataType::Payments, "Payment", "list-payments", "get-payment", "paymentId"),
    (DataType::Products, "Product", "list-products", "get-product", "productId"),
    (DataType::Transactions, "Transaction", "list-transactions", "get-transaction", "transactionId"),
];

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}}})
}

/// Completes the generated document (see the module's documentation).
pub fn complete(doc: &mut Value) {
    commerce_paths(doc);
    enums_and_formats(doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for op in item.values_mut() {
            operation(op);
        }
    }
}

fn operation(op: &mut Value) {
    let id = op["operationId"].as_str().unwrap_or_default().to_owned();
    let params: Vec<(String, String)> = op["parameters"]
        .as_array()
        .map(|ps| ps.iter().map(|p| (p["name"].as_str().unwrap_or("").to_owned(), p["in"].as_str().unwrap_or("").to_owned())).collect())
        .unwrap_or_default();
    if let Some(ps) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in ps {
            parameter(p);
        }
    }
    let has_body = op.get("requestBody").is_some();
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { return };
    let mut add = |status: &str, description: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| error(description));
    };
    let has_path = params.iter().any(|(_, at)| at == "path");
    if has_path || has_body || params.iter().any(|(_, at)| at == "query") {
        add("400", "Malformed: an id that is not a UUID, a bad query, page or body.");
    }
    add("401", "No API key, or not a valid one.");
    if has_path {
        add("404", "No such resource.");
    }
    if has_body {
        add("413", "The body is larger than 2 MiB.");
    }
    add("429", "Too many requests for the API key, or too many failed authentications from the address (docs/api.md).");
    add("500", "An internal error occurred.");
    if CALL_STRIPE.contains(&id.as_str()) {
        add("502", "Stripe could not be reached to revoke access; nothing was changed.");
    }
    if let Some(r) = responses.get_mut("429") {
        r["headers"] = json!({"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 1}}});
    }
}

fn parameter(p: &mut Value) {
    let name = p["name"].as_str().unwrap_or_default().to_owned();
    let at = p["in"].as_str().unwrap_or_default().to_owned();
    match (name.as_str(), at.as_str()) {
        (n, "path") if UUID_PARAMS.contains(&n) => p["schema"] = json!({"type": "string", "format": "uuid"}),
        ("connectionId", "query") => p["schema"] = json!({"type": "string", "format": "uuid"}),
        ("platformKey", "path") => p["schema"] = json!({"type": "string", "pattern": "^[a-z]{4}$"}),
        ("dataType", "path") => p["schema"] = json!({"type": "string", "enum": DataType::ALL.iter().map(|d| d.key()).collect::<Vec<_>>()}),
        ("page", "query") => p["schema"] = json!({"type": "integer", "format": "int32", "minimum": 1, "default": 1}),
        ("pageSize", "query") => {
            p["schema"] = json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": tributary_domain::paging::MAX_PAGE_SIZE, "default": tributary_domain::paging::DEFAULT_PAGE_SIZE});
        }
        _ => {}
    }
}

/// One list and one record path per commerce data type, typed, in place of the generic ones.
fn commerce_paths(doc: &mut Value) {
    let base = "/companies/{companyId}/connections/{connectionId}/data";
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    let (Some(list), Some(show)) =
        (paths.remove(&format!("{base}/{{dataType}}")), paths.remove(&format!("{base}/{{dataType}}/{{recordId}}")))
    else {
        return;
    };
    if let Some(info) = paths.get_mut(&format!("{base}/commerce-info")) {
        info["get"]["responses"]["200"]["content"]["application/json"]["schema"] = json!({"$ref": "#/components/schemas/CompanyInfo"});
    }
    let without_type = |op: &Value, rename: Option<&str>| {
        let mut op = op.clone();
        if let Some(ps) = op["parameters"].as_array_mut() {
            ps.retain(|p| p["name"] != "dataType");
            for p in ps.iter_mut().filter(|p| p["name"] == "recordId") {
                p["name"] = json!(rename.unwrap_or("recordId"));
            }
        }
        op
    };
    for (dt, schema, list_id, get_id, param) in COMMERCE {
        let mut l = without_type(&list["get"], None);
        l["operationId"] = json!(list_id);
        l["summary"] = json!(format!("List {}", dt.key()));
        l["responses"]["200"]["content"]["application/json"]["schema"] = json!({"$ref": format!("#/components/schemas/Paged_{schema}")});
        paths.insert(format!("{base}/{}", dt.key()), json!({"get": l}));
        let mut g = without_type(&show["get"], Some(param));
        g["operationId"] = json!(get_id);
        g["summary"] = json!(format!("Get one of {}", dt.key()));
        g["responses"]["200"]["content"]["application/json"]["schema"] = json!({"$ref": format!("#/components/schemas/{schema}")});
        paths.insert(format!("{base}/{}/{{{param}}}", dt.key()), json!({"get": g}));
    }
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return };
    let Some(paged) = schemas.get("Paged_CompanyDto").cloned() else { return };
    for (_, schema, ..) in COMMERCE {
        let mut p = paged.clone();
        p["properties"]["results"]["items"] = json!({"$ref": format!("#/components/schemas/{schema}")});
        p["description"] = json!(format!("A page of {schema} records."));
        schemas.insert(format!("Paged_{schema}"), p);
    }
}

/// Enums of status strings and formats of ids, dates and URLs in the component schemas.
fn enums_and_formats(doc: &mut Value) {
    use tributary_domain::model::{company::SOURCE_TYPES, connection::ConnectionStatus, pull::DatasetStatus};
    let connection_statuses: Vec<&str> = ConnectionStatus::ALL.iter().map(|s| s.as_str()).collect();
    let dataset_statuses: Vec<&str> = DatasetStatus::ALL.iter().map(|s| s.as_str()).collect();
    let data_types: Vec<&str> = DataType::ALL.iter().map(|d| d.key()).collect();
    let enums: [(&str, &str, Vec<&str>); 7] = [
        ("ConnectionDto", "status", connection_statuses),
        ("ConnectionDto", "sourceType", SOURCE_TYPES.to_vec()),
        ("IntegrationDto", "sourceType", SOURCE_TYPES.to_vec()),
        ("PullOperationDto", "status", dataset_statuses.clone()),
        ("PullOperationDto", "dataType", data_types.clone()),
        ("DataStatusDto", "currentStatus", dataset_statuses),
        ("DataStatusDto", "dataType", data_types),
    ];
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return };
    for (schema, field, values) in enums {
        if let Some(p) = schemas.get_mut(schema).and_then(|s| s.pointer_mut(&format!("/properties/{field}"))) {
            p["enum"] = json!(values);
        }
    }
    let formats: [(&str, &str, &str); 15] = [
        ("CompanyDto", "created", "date-time"),
        ("CompanyDto", "lastSync", "date-time"),
        ("ConnectionDto", "lastSync", "date-time"),
        ("DataConnectionErrorDto", "erroredOnUtc", "date-time"),
        ("ApiKeyDto", "createdDate", "date-time"),
        ("CompanyDto", "id", "uuid"),
        ("CompanyDto", "redirect", "uri"),
        ("ConnectionDto", "created", "date-time"),
        ("ConnectionDto", "linkUrl", "uri"),
        ("PullOperationDto", "requested", "date-time"),
        ("PullOperationDto", "completed", "date-time"),
        ("PullOperationDto", "companyId", "uuid"),
        ("PullOperationDto", "connectionId", "uuid"),
        ("WebhookConsumerDto", "url", "uri"),
        ("IntegrationDto", "logoUrl", "uri"),
    ];
    // Dates of the commerce records: RFC 3339 in UTC (docs/stripe-mapping.md).
    for schema in ["CompanyInfo", "Customer", "Dispute", "Payment", "Product", "ProductVariant", "Transaction"] {
        if let Some(props) = schemas.get_mut(schema).and_then(|s| s.get_mut("properties")).and_then(Value::as_object_mut) {
            for (name, p) in props.iter_mut() {
                if name.ends_with("Date")
                    && let Some(p) = p.as_object_mut()
                {
                    p.insert("format".into(), json!("date-time"));
                }
            }
        }
    }
    for (schema, field, format) in formats {
        if let Some(p) = schemas.get_mut(schema).and_then(|s| s.pointer_mut(&format!("/properties/{field}"))).and_then(Value::as_object_mut)
        {
            p.insert("format".into(), json!(format));
        }
    }
}
