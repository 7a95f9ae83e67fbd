"""MQTT alert sink plugin for secfepas_sdk (entry points ``mqtt`` and ``mqtts``)."""

from secfepas_mqtt.sink import MqttSink, MqttSinkConfig, mqtt_sink_factory, parse_mqtt_uri

__all__ = ["MqttSink", "MqttSinkConfig", "mqtt_sink_factory", "parse_mqtt_uri"]
