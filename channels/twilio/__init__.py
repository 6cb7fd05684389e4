"""SMS and WhatsApp through Twilio. Its registry entry is `channels.twilio.plugin.TWILIO`."""
