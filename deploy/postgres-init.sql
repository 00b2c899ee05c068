-- One database per service: services never read each other's tables.
CREATE DATABASE identity;
CREATE DATABASE licenses;
CREATE DATABASE seal;
CREATE DATABASE payment;
CREATE DATABASE messaging;
CREATE DATABASE gateway;
