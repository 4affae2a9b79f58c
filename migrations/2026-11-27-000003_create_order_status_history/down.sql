DROP TABLE order_status_history;
