DROP TABLE order_fulfillments;
