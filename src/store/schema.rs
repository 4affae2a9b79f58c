// The tables as the migrations create them (what `diesel print-schema` prints).

diesel::table! {
    orders (id) {
        id -> Text,
        status -> Text,
        fulfillment_status -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    order_fulfillments (fulfillment_id) {
        fulfillment_id -> Text,
        order_id -> Text,
        status -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    order_payments (payment_id) {
        payment_id -> Text,
        order_id -> Text,
        status -> Text,
        amount -> Nullable<Numeric>,
        currency -> Nullable<Text>,
        reason -> Nullable<Text>,
        updated_at -> Timestamptz,
        order_number -> Nullable<Text>,
        reported_status -> Nullable<Text>,
    }
}

diesel::table! {
    order_status_history (id) {
        id -> Int8,
        order_id -> Text,
        from_status -> Text,
        to_status -> Text,
        reason -> Text,
        event_id -> Text,
        stream_entry_id -> Text,
        created_at -> Timestamptz,
        metadata -> Nullable<Json>,
    }
}

// Unique by (order_id, event_id) (migration 000010), by event_id alone until the contract step
// 000013; diesel wants a key column here.
diesel::table! {
    processed_events (event_id) {
        event_id -> Text,
        stream_entry_id -> Text,
        outcome -> Text,
        processed_at -> Timestamptz,
        order_id -> Nullable<Text>,
        topic -> Nullable<Text>,
        position -> Nullable<Int8>,
        said -> Nullable<Text>,
    }
}

diesel::joinable!(order_fulfillments -> orders (order_id));
diesel::joinable!(order_payments -> orders (order_id));
diesel::joinable!(order_status_history -> orders (order_id));

diesel::allow_tables_to_appear_in_same_query!(
    orders,
    order_fulfillments,
    order_payments,
    order_status_history,
    processed_events,
);
